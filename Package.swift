// swift-tools-version:6.0
// moebench: DiT-MoE inference, expert serving, sampler curves and the harness around them.
// System libraries (Debian): libopenblas-dev, libnuma-dev, liblz4-dev, libdnnl-dev — see scripts/bootstrap.
import PackageDescription

// Release code is generated for AVX2 + FMA (`haswell`, any x86-64 CPU since 2013) instead of the SSE2 baseline:
// the elementwise kernels (SiLU, softmax, norms, BF16 rounding, im2col) then run 8 lanes wide, not 4. Building for
// the machine at hand: `MOEBENCH_TARGET_CPU=native swift build -c release` (any `swiftc -target-cpu` value; the
// binary then runs only on CPUs with the same instruction sets, so a cluster's hosts must match).
#if arch(x86_64)
let targetCPU = Context.environment["MOEBENCH_TARGET_CPU"] ?? "haswell"
let optimise: [SwiftSetting] = [.unsafeFlags(["-Ounchecked", "-target-cpu", targetCPU], .when(configuration: .release))]
#else
let optimise: [SwiftSetting] = [.unsafeFlags(["-Ounchecked"], .when(configuration: .release))]
#endif

let package = Package(
    name: "moebench",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "moebench", targets: ["moebench"]),
        .executable(name: "moebench-bench", targets: ["moebench-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-crypto", "3.0.0"..<"5.0.0"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
    ],
    targets: [
        // System libraries: module maps only.
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CNUMA", providers: [.apt(["libnuma-dev"])]),
        .systemLibrary(name: "CLZ4", pkgConfig: "liblz4", providers: [.apt(["liblz4-dev"])]),
        .systemLibrary(name: "CDNNL", providers: [.apt(["libdnnl-dev"])]),
        // Small C helpers that need _GNU_SOURCE (CPU affinity, current CPU, page queries).
        .target(name: "CSupport", linkerSettings: [.linkedLibrary("numa")]),
        // The physical FP32/BF16 compute peak (inline AVX-512 assembly, CPUID-checked; pthreads).
        .target(name: "CPeak", linkerSettings: [.linkedLibrary("pthread")]),

        .target(name: "Tensor", dependencies: ["CBLAS", "CDNNL", "CPeak"], swiftSettings: optimise),
        .target(name: "DiT", dependencies: ["Tensor"], swiftSettings: optimise),
        .target(name: "Diffusion", dependencies: ["Tensor", "CBLAS"], swiftSettings: optimise),
        // Image networks for FID: the SD-VAE (AutoencoderKL) decoder; reads safetensors through DiT's reader.
        .target(name: "Vision", dependencies: ["Tensor", "DiT"], swiftSettings: optimise),
        .target(name: "Wire", dependencies: ["CLZ4", "CSupport", .product(name: "Crypto", package: "swift-crypto")],
                swiftSettings: optimise),
        .target(name: "Metrics", dependencies: ["Tensor", "CBLAS"], swiftSettings: optimise),
        // File formats in pure Swift: DEFLATE/zlib, zip, numpy .npy/.npz, PNG (no new system library).
        .target(name: "Formats", swiftSettings: optimise),
        // FID as pytorch-fid / clean-fid / torch-fidelity users expect it: image sets, streamed Inception statistics,
        // reference .npz files, KID, a content-keyed statistics cache.
        .target(name: "FID", dependencies: ["Formats", "Metrics", "Vision", "DiT", "Tensor",
                                            .product(name: "Crypto", package: "swift-crypto")], swiftSettings: optimise),
        .target(name: "Training", dependencies: ["DiT", "Tensor", "Diffusion", "Metrics", "CBLAS"], resources: [.copy("Resources")],
                swiftSettings: optimise),
        .target(name: "Cluster", dependencies: ["DiT", "Wire", "Tensor", "CNUMA", "CSupport"], swiftSettings: optimise),
        .target(name: "Harness", dependencies: ["DiT", "Diffusion", "Cluster", "Metrics", "Wire", "Training", "Vision", "FID", "CNUMA", "CBLAS",
                                                .product(name: "TOMLKit", package: "TOMLKit")],
                swiftSettings: optimise),
        .executableTarget(name: "moebench", dependencies: [
            "Tensor", "DiT", "Diffusion", "Wire", "Cluster", "Metrics", "Harness", "Training", "Vision", "FID", "Formats",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], swiftSettings: optimise),
        .executableTarget(name: "moebench-bench", dependencies: [
            "Tensor", "DiT", "Diffusion", "Wire", "Cluster", "Metrics", "Harness", "Training", "CBLAS", "Vision",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], path: "bench/moebench-bench", swiftSettings: optimise),

        .testTarget(name: "TensorTests", dependencies: ["Tensor"]),
        .testTarget(name: "DiTTests", dependencies: ["DiT", "Tensor"], resources: [.copy("Fixtures")]),
        .testTarget(name: "DiffusionTests", dependencies: ["Diffusion", "Tensor", "Metrics"], resources: [.copy("Fixtures")]),
        .testTarget(name: "VisionTests", dependencies: ["Vision", "DiT", "Tensor"], resources: [.copy("Fixtures")]),
        .testTarget(name: "FIDTests", dependencies: ["FID", "Formats", "Metrics", "Vision", "DiT", "Tensor"], resources: [.copy("Fixtures")]),
        .testTarget(name: "WireTests", dependencies: ["Wire"]),
        .testTarget(name: "ClusterTests", dependencies: ["Cluster", "DiT", "Wire"]),
        .testTarget(name: "MetricsTests", dependencies: ["Metrics", "Tensor"]),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "DiT", "Tensor", "Diffusion", "Metrics"], resources: [.copy("Fixtures")]),
        .testTarget(name: "HarnessTests", dependencies: ["Harness", "Metrics", "Diffusion", "Wire", "DiT", "Vision", "FID", "Tensor"], resources: [.copy("Fixtures")]),
    ],
    swiftLanguageModes: [.v5]
)
