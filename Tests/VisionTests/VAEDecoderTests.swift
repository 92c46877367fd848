import DiT
import Foundation
import Tensor
import XCTest
@testable import Vision

/// The SD-VAE decoder against diffusers' `AutoencoderKL.decode` on random weights (fixtures written by
/// tools/make_vae_fixtures.py), and the loader on files the tests write themselves.
final class VAEDecoderTests: XCTestCase {
    func fixture(_ name: String) -> String {
        Bundle.module.url(forResource: "Fixtures/\(name)", withExtension: nil)!.path
    }

    func tmpPath(_ name: String) -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("moebench-vae-\(getpid())")
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir.appendingPathComponent(name).path
    }

    /// Max |Δ| / max |ref|.
    func relativeError(_ a: [Float], _ b: [Float]) -> Double {
        let scale = Double(b.map { abs($0) }.max() ?? 0)
        return zip(a, b).map { Double(abs($0 - $1)) }.max()! / max(scale, 1e-30)
    }

    /// Decodes the fixture's latents with a decoder built from `weights`; returns (ours, diffusers' float64 sample).
    func decodeFixture(_ dir: String, weights: VAEDecoderWeights, maxBatch: Int = 8,
                       convScratchFloats: Int = 1 << 21, precision: ComputePrecision = .fp32,
                       layout: VAEDecoder.Layout = .channelsLast) throws -> ([Float], [Float], VAEDecoder) {
        let io = try SafetensorsFile(path: dir + "/io.safetensors")
        let shape = io["latent"]!.shape
        let latent = try io.floats("latent"), expected = try io.floats("sample")
        let dec = VAEDecoder(weights: weights, latentHeight: shape[2], latentWidth: shape[3], maxBatch: maxBatch,
                             convScratchFloats: convScratchFloats, precision: precision, layout: layout)
        var out = [Float](repeating: .nan, count: shape[0] * dec.imageCount)
        XCTAssertEqual(out.count, expected.count)
        dec.decode(latents: latent, batch: shape[0], scalingFactor: weights.config.scalingFactor, into: &out)
        return (out, expected, dec)
    }

    // Tolerance 1e-4 relative to max |sample| (diffusers in float64 as the reference; diffusers' own float32 run is
    // within about 1e-6, see meta.json), on both GEMM backends (packed oneDNN weights, unpacked OpenBLAS), 1 and 2
    // workers, both layouts (channels-last and the NCHW conv2d path), with whole-image and smallest convolution bands.
    func testDecoderMatchesDiffusersOnRandomWeights() throws {
        let savedBackend = GEMMBackend.current, savedThreads = Parallel.threads
        defer { GEMMBackend.current = savedBackend; Parallel.threads = savedThreads }
        var worst: [VAEDecoder.Layout: Double] = [:]
        defer { print("FP32 decoder vs diffusers float64, worst max |Δ| / max |ref| per layout: \(worst)") }
        for name in ["vae_small", "vae_three_level"] {
            let dir = fixture(name)
            let config = try VAEConfig.named(dir)
            let weights = try VAEDecoderWeights(file: SafetensorsFile(path: dir + "/weights.safetensors"), config: config)
            for backend in GEMMBackend.allCases where backend == .openblas || DNNL.isAvailable {
                for threads in [1, 2] {
                    GEMMBackend.current = backend
                    Parallel.threads = threads
                    for layout in VAEDecoder.Layout.allCases {
                        for scratch in [1 << 21, 1] {  // 1 float is raised to the one-output-pixel (NCHW: row) minimum
                            let (ours, ref, _) = try decodeFixture(dir, weights: weights, convScratchFloats: scratch, layout: layout)
                            let err = relativeError(ours, ref)
                            XCTAssertLessThanOrEqual(err, 1e-4, "\(name), \(backend), \(threads) worker(s), \(layout), scratch \(scratch): \(err)")
                            worst[layout] = max(worst[layout] ?? 0, err)
                        }
                    }
                }
            }
        }
    }

    // Chunked decoding (maxBatch 1 for a batch of 2) gives the same floats as one chunk; pixels follow the rule
    // applied to diffusers' sample within one level (a value on a rounding boundary may land either side).
    func testChunkedDecodeAndPixelsAgree() throws {
        let dir = fixture("vae_small")
        let weights = try VAEDecoderWeights(file: SafetensorsFile(path: dir + "/weights.safetensors"), config: VAEConfig.named(dir))
        let (whole, ref, _) = try decodeFixture(dir, weights: weights, maxBatch: 2)
        let (chunked, _, dec) = try decodeFixture(dir, weights: weights, maxBatch: 1)
        XCTAssertEqual(whole, chunked)
        let io = try SafetensorsFile(path: dir + "/io.safetensors")
        let latent = try io.floats("latent")
        for rule in PixelQuantisation.allCases {
            var pixels = [UInt8](repeating: 0, count: ref.count)
            dec.decodePixels(latents: latent, batch: 2, scalingFactor: 0.18215, quantisation: rule, into: &pixels)
            let worst = zip(pixels, ref).map { abs(Int($0) - Int(rule.pixel($1))) }.max()!
            XCTAssertLessThanOrEqual(worst, 1, "\(rule)")
            let exact = zip(pixels, ref).filter { $0 == rule.pixel($1) }.count
            XCTAssertGreaterThan(Double(exact) / Double(ref.count), 0.99, "\(rule)")
        }
    }

    // BF16 convolution GEMMs (oneDNN) against the FP32 decoder on the same weights and latents, both fixtures, 1 and
    // 2 workers, both layouts. Measured on 2026-12-03: max |Δ| / max |FP32| 8.1e-3 (vae_small) and 8.9e-3
    // (vae_three_level), the same against diffusers' float64 sample; tolerance 2e-2 (BF16 keeps 8 significant bits,
    // ≤ 2⁻⁹ relative rounding per GEMM input, through 11–13 convs). uint8 pixels by the sample_ddp rule: measured equal
    // on 81.5–82.1 % (vae_small) and 75.0 % (vae_three_level), at most 1 and 2 levels apart; asserted ≥ 70 % and
    // ≤ 3 levels. (FP32 against diffusers: ≤ 8.4e-7.)
    func testBF16DecoderAgainstFP32() throws {
        guard DNNL.isAvailable else { throw XCTSkip("oneDNN has no CPU engine here") }
        let savedBackend = GEMMBackend.current, savedThreads = Parallel.threads
        defer { GEMMBackend.current = savedBackend; Parallel.threads = savedThreads }
        GEMMBackend.current = .onednn
        for name in ["vae_small", "vae_three_level"] {
            let dir = fixture(name)
            let config = try VAEConfig.named(dir)
            let weights = try VAEDecoderWeights(file: SafetensorsFile(path: dir + "/weights.safetensors"), config: config)
            for threads in [1, 2] {
                for layout in VAEDecoder.Layout.allCases {
                    Parallel.threads = threads
                    let (fp32, ref, _) = try decodeFixture(dir, weights: weights, layout: layout)
                    let (bf16, _, dec) = try decodeFixture(dir, weights: weights, precision: .bf16, layout: layout)
                    XCTAssertEqual(dec.precision, .bf16)
                    let err = relativeError(bf16, fp32)
                    XCTAssertLessThanOrEqual(err, 2e-2, "\(name), \(threads) worker(s), \(layout): BF16 vs FP32 \(err)")
                    XCTAssertGreaterThan(err, 0, "\(name): the BF16 decoder gave the FP32 floats; did it run BF16?")
                    let rule = PixelQuantisation.roundHalfUp
                    let pa = fp32.map(rule.pixel), pb = bf16.map(rule.pixel)
                    let agree = Double(zip(pa, pb).filter { $0 == $1 }.count) / Double(pa.count)
                    let worst = zip(pa, pb).map { abs(Int($0) - Int($1)) }.max()!
                    XCTAssertGreaterThanOrEqual(agree, 0.70, "\(name), \(layout): pixel agreement \(agree)")
                    XCTAssertLessThanOrEqual(worst, 3, "\(name), \(layout): pixels differ by \(worst) levels")
                    print("BF16 decoder \(name), \(threads) worker(s), \(layout): max |Δ| / max |FP32| = \(err), vs diffusers float64 \(relativeError(bf16, ref)); "
                          + "uint8 pixels equal on \(100 * agree) %, worst \(worst) level(s)")
                }
            }
        }
    }

    func testPixelQuantisationRules() {
        // truncate: floor(255·clamp((x+1)/2, 0, 1))
        XCTAssertEqual(PixelQuantisation.truncate.pixel(-1), 0)
        XCTAssertEqual(PixelQuantisation.truncate.pixel(-7), 0)
        XCTAssertEqual(PixelQuantisation.truncate.pixel(1), 255)
        XCTAssertEqual(PixelQuantisation.truncate.pixel(3), 255)
        XCTAssertEqual(PixelQuantisation.truncate.pixel(0), 127)  // 127.5 truncated
        XCTAssertEqual(PixelQuantisation.truncate.pixel(2 * 200.99 / 255 - 1), 200)
        // roundHalfUp: floor(clamp(127.5·x + 128, 0, 255))
        XCTAssertEqual(PixelQuantisation.roundHalfUp.pixel(0), 128)
        XCTAssertEqual(PixelQuantisation.roundHalfUp.pixel(-1), 0)  // 0.5 → 0
        XCTAssertEqual(PixelQuantisation.roundHalfUp.pixel(1), 255)
        XCTAssertEqual(PixelQuantisation.roundHalfUp.pixel(2 * 200.4 / 255 - 1), 200)
        XCTAssertEqual(PixelQuantisation.roundHalfUp.pixel(2 * 200.6 / 255 - 1), 201)
        var out: [UInt8] = [9]
        PixelQuantisation.truncate.quantise([Float.nan], count: 1, into: &out)
        XCTAssertEqual(out, [0])
    }

    func testConfigsFromDiffusersJSONAndBuiltIn() throws {
        let small = try VAEConfig.named(fixture("vae_small") + "/config.json")
        XCTAssertEqual(small, VAEConfig(blockOutChannels: [16, 32], layersPerBlock: 1, normGroups: 8))
        // The released sd-vae decoder: 140 tensors, 49,490,199 parameters (counted from diffusers'
        // AutoencoderKL(block_out_channels=(128,256,512,512), layers_per_block=2) state dict, decoder + post_quant_conv).
        let sd = try VAEConfig.named("sd-vae-ft-mse")
        let tensors = VAEDecoderWeights.expectedTensors(sd)
        XCTAssertEqual(tensors.count, 140)
        XCTAssertEqual(tensors.reduce(0) { $0 + $1.shape.reduce(1, *) }, 49_490_199)
        XCTAssertEqual(tensors.filter { $0.name.hasPrefix("decoder.up_blocks.0.resnets.") && $0.name.hasSuffix("conv1.weight") }.count, 3)
        // A config that does not describe an AutoencoderKL decoder.
        let bad = tmpPath("bad_config.json")
        try #"{"_class_name": "AutoencoderKL", "block_out_channels": [16, 30], "norm_num_groups": 8}"#.write(toFile: bad, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try VAEConfig.load(path: bad)) { XCTAssertTrue("\($0)".contains("norm_num_groups"), "\($0)") }
        try #"{"block_out_channels": [16], "up_block_types": ["UpBlock2D"]}"#.write(toFile: bad, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try VAEConfig.load(path: bad)) { XCTAssertTrue("\($0)".contains("up_block_types"), "\($0)") }
        XCTAssertThrowsError(try VAEConfig.named("sd-vae-ft-nope")) { XCTAssertTrue("\($0)".contains("sd-vae-ft-mse"), "\($0)") }
    }

    /// Writes a random decoder for `config` under current names, with `edit` applied to the (name, shape) list.
    func writeRandom(_ config: VAEConfig, to path: String, edit: (inout [(name: String, shape: [Int])]) -> Void = { _ in }) throws {
        var tensors = VAEDecoderWeights.expectedTensors(config)
        edit(&tensors)
        var rng = SplitMix64(seed: 5)
        var w = SafetensorsWriter()
        w.add("encoder.conv_in.weight", shape: [2], floats: [1, 2])  // encoder tensors are ignored
        for t in tensors { w.add(t.name, shape: t.shape, floats: (0..<t.shape.reduce(1, *)).map { _ in rng.nextUnitFloat() - 0.5 }) }
        try w.write(to: path)
    }

    func testLoaderOnFilesTheTestWritesNamesMissingKeysAndShapes() throws {
        let config = VAEConfig(blockOutChannels: [8, 16], layersPerBlock: 1, normGroups: 4)
        let good = tmpPath("good.safetensors")
        try writeRandom(config, to: good)
        let weights = try VAEDecoderWeights(file: SafetensorsFile(path: good), config: config)
        XCTAssertEqual(weights.upBlocks.count, 2)
        XCTAssertEqual(weights.upBlocks[0].resnets.count, 2)
        XCTAssertNil(weights.upBlocks[1].upsampler)
        XCTAssertNotNil(weights.upBlocks[1].resnets[0].shortcut)  // 16 → 8
        // A decoder built from it runs and gives finite output of the right size.
        let dec = VAEDecoder(weights: weights, latentHeight: 3, latentWidth: 2)
        XCTAssertEqual([dec.outHeight, dec.outWidth], [6, 4])
        var out = [Float](repeating: .nan, count: dec.imageCount)
        dec.decode(latents: [Float](repeating: 0.1, count: 4 * 6), batch: 1, scalingFactor: 0.18215, into: &out)
        XCTAssertTrue(out.allSatisfy(\.isFinite))

        let missing = tmpPath("missing.safetensors")
        try writeRandom(config, to: missing) { $0.removeAll { $0.name == "decoder.up_blocks.1.resnets.0.conv_shortcut.weight" } }
        XCTAssertThrowsError(try VAEDecoderWeights(file: SafetensorsFile(path: missing), config: config)) {
            XCTAssertEqual("\($0)", "\(missing): missing tensor 'decoder.up_blocks.1.resnets.0.conv_shortcut.weight' (expected shape [8, 16, 1, 1])")
        }
        try writeRandom(config, to: missing) { $0.removeAll { $0.name == "decoder.mid_block.attentions.0.to_k.weight" } }
        XCTAssertThrowsError(try VAEDecoderWeights(file: SafetensorsFile(path: missing), config: config)) {
            XCTAssertTrue("\($0)".contains("'decoder.mid_block.attentions.0.to_k.weight' or 'decoder.mid_block.attentions.0.key.weight'"), "\($0)")
        }
        let wrong = tmpPath("wrong.safetensors")
        try writeRandom(config, to: wrong) { t in
            let i = t.firstIndex { $0.name == "decoder.conv_in.weight" }!
            t[i].shape = [16, 4, 1, 1]
        }
        XCTAssertThrowsError(try VAEDecoderWeights(file: SafetensorsFile(path: wrong), config: config)) {
            XCTAssertEqual("\($0)", "\(wrong): tensor 'decoder.conv_in.weight' has shape [16, 4, 1, 1], expected [16, 4, 3, 3]")
        }
        // A file for layers_per_block 2 read with a config that says 1: the third resnet is reported.
        let deeper = tmpPath("deeper.safetensors")
        var two = config
        two.layersPerBlock = 2
        try writeRandom(two, to: deeper)
        XCTAssertThrowsError(try VAEDecoderWeights(file: SafetensorsFile(path: deeper), config: config)) {
            XCTAssertTrue("\($0)".contains("unexpected tensor 'decoder.up_blocks.0.resnets.2."), "\($0)")
        }
    }

    // The older attention names (query/key/value/proj_attn), with 1×1-conv-shaped [C, C, 1, 1] projections, give the
    // same decoder bit for bit.
    func testOldAttentionKeyNamesLoadTheSameDecoder() throws {
        let dir = fixture("vae_small")
        let config = try VAEConfig.named(dir)
        let file = try SafetensorsFile(path: dir + "/weights.safetensors")
        let renames = ["to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"]
        var w = SafetensorsWriter()
        for name in file.names {
            var newName = name, shape = file[name]!.shape
            for (new, old) in renames where name.contains(".attentions.0.\(new).") {
                newName = name.replacingOccurrences(of: ".\(new).", with: ".\(old).")
                if shape.count == 2 { shape += [1, 1] }
            }
            w.add(newName, shape: shape, floats: try file.floats(name))
        }
        let old = tmpPath("old_names.safetensors")
        try w.write(to: old)
        let a = try decodeFixture(dir, weights: VAEDecoderWeights(file: file, config: config)).0
        let b = try decodeFixture(dir, weights: VAEDecoderWeights(file: SafetensorsFile(path: old), config: config)).0
        XCTAssertEqual(a, b)
    }
}
