import DiT
import Foundation
import Tensor
import Wire
import XCTest
@testable import Cluster

/// A worker computing in BF16 takes BF16 activation shards into its BF16 GEMMs as BF16 bits whatever their
/// shuffle/LZ4 (decoded into a reused BF16 buffer, never widened to FP32), with results bit-identical to the raw
/// BF16 path and to the in-process BF16 expert.
final class BF16CodecTests: XCTestCase {
    static let bf16Codecs = [ShardOptions(dtype: .bf16, shuffle: false, compression: .none),
                             ShardOptions(dtype: .bf16, shuffle: true, compression: .none),
                             ShardOptions(dtype: .bf16, shuffle: false, compression: .lz4),
                             ShardOptions(dtype: .bf16, shuffle: true, compression: .lz4)]
    static let layer = 1
    static let groups = [ExpertGroup(expert: 1, rows: 5), ExpertGroup(expert: 4, rows: 0), ExpertGroup(expert: 6, rows: 9)]
    static let rows = 14
    static var dim: Int { tinyConfig.hiddenSize }
    /// Per row a repeating pattern of 13 values times a row scale: LZ4 compresses it with and without the shuffle,
    /// so the LZ4 variants really decompress.
    static let activations: [Float] = (0..<(rows * tinyConfig.hiddenSize)).map { i in
        Float((i * 7) % 13 - 6) * 0.37 * (1 + Float(i / tinyConfig.hiddenSize) / 7)
    }
    static let gate: [Float] = (0..<rows).map { 0.2 + 0.05 * Float($0) }

    func withOneDNN(_ body: () throws -> Void) throws {
        guard DNNL.isAvailable else { throw XCTSkip("BF16 GEMMs need oneDNN") }
        let saved = GEMMBackend.current
        GEMMBackend.current = .onednn
        defer { GEMMBackend.current = saved }
        try body()
    }

    /// One EXPERT round trip to `worker`; returns the output shard decoded to BF16 bits (a BF16 codec) or floats'
    /// bit patterns (F32).
    func request(_ worker: ExpertWorker, _ options: ShardOptions) throws -> (bits: [UInt32], compressed: Bool) {
        let c = try authenticatedClient(worker)
        defer { c.close() }
        let codec = ShardCodec()
        var compressed = false
        try c.send(.expert, requestID: 4) { b in
            compressed = try ExpertMessage.encodeRequest(into: b, layer: Self.layer, dim: Self.dim, groups: Self.groups,
                                                   activations: Self.activations, gate: Self.gate, codec: codec, options: options).compressed
        }
        let f = try c.receive(timeout: 10)
        try f.throwIfError()
        var groups: [ExpertGroup] = []
        let result = try ExpertMessage.decodeResult(f.payload, groups: &groups)
        XCTAssertEqual(groups, Self.groups)
        let n = Self.rows * Self.dim
        if options.dtype == .bf16 {
            var bits = [UInt16](repeating: 0, count: n)
            try codec.decode(bf16: result.output, into: &bits)
            return (bits.map(UInt32.init), compressed)
        }
        var out = [Float](repeating: 0, count: n)
        try codec.decode(result.output, into: &out)
        return (out.map(\.bitPattern), compressed)
    }

    func testBF16WorkerGivesBitIdenticalResultsForEveryBF16Codec() throws {
        try withOneDNN {
            let worker = try ExpertWorker.start(config: tinyConfig, source: tinySource, experts: Array(0..<8),
                                                options: WorkerOptions(name: "bf", port: 0, secret: testSecret), precision: .bf16)
            worker.serveInBackground()
            defer { worker.stop(); worker.waitForConnections() }

            // The in-process BF16 experts on the same FP32 activations (their GEMMs round them to BF16 themselves).
            let local = try DiTWeights(config: tinyConfig, source: tinySource, precision: .bf16)
            var want = [Float](repeating: .nan, count: Self.rows * Self.dim)
            let hidden = UnsafeMutablePointer<Float>.allocate(capacity: SwiGLUExpert.hiddenScratchCount(width: tinyConfig.expertHidden))
            defer { hidden.deallocate() }
            var row = 0
            for g in Self.groups {
                let w = local.expert(layer: Self.layer, expert: Int(g.expert))
                let m = SwiGLUExpert(gateUp: w.gateUp, down: w.down)
                XCTAssertTrue(m.takesBF16)
                Self.activations.withUnsafeBufferPointer { x in
                    Self.gate.withUnsafeBufferPointer { s in
                        want.withUnsafeMutableBufferPointer { o in
                            m.apply(x.baseAddress! + row * Self.dim, rows: Int(g.rows), into: o.baseAddress! + row * Self.dim,
                                    rowScale: s.baseAddress! + row, accumulate: false, hidden: hidden, widen: nil)
                        }
                    }
                }
                row += Int(g.rows)
            }

            // F32 shards: the worker's FP32 output is the in-process one, bit for bit.
            let f32 = try request(worker, .raw)
            XCTAssertEqual(f32.bits, want.map(\.bitPattern), "F32 codec against in-process BF16 experts")
            // BF16 shards, every shuffle × LZ4: the result shard is BF16 too (the request's codec), so each must be
            // the in-process output rounded to BF16, identically.
            let wantBF16 = want.map { UInt32(FloatCast.bf16Bits($0)) }
            for options in Self.bf16Codecs {
                let got = try request(worker, options)
                XCTAssertEqual(got.compressed, options.compression == .lz4, "\(options)")
                XCTAssertEqual(got.bits, wantBF16, "\(options) against in-process BF16 experts")
            }
        }
    }

    /// Shuffled/LZ4 BF16 shards are decoded into the session's BF16 buffer (the same one for every request once it
    /// has grown); raw ones are read in place from the payload; other dtypes go the FP32 way.
    func testBF16ActivationsAreDecodedIntoTheReusedBF16Buffer() throws {
        try withOneDNN {
            let worker = try ExpertWorker.start(config: tinyConfig, source: tinySource, experts: Array(0..<8),
                                                options: WorkerOptions(name: "bf", port: 0, secret: testSecret), precision: .bf16)
            defer { worker.stop() }
            let session = WorkerSession(worker: worker)
            XCTAssertTrue(session.takesBF16)
            session.ensure(rows: Self.rows)
            let buffer = session.inputBF16
            let want = Self.activations.map { FloatCast.bf16Bits($0) }
            for options in Self.bf16Codecs + [ShardOptions.raw, ShardOptions(dtype: .f16, shuffle: true, compression: .lz4)] {
                for _ in 0..<2 {
                    let b = WireBuffer()
                    try ExpertMessage.encodeRequest(into: b, layer: Self.layer, dim: Self.dim, groups: Self.groups,
                                                    activations: Self.activations, gate: Self.gate, codec: ShardCodec(), options: options)
                    var groups: [ExpertGroup] = []
                    let req = try ExpertMessage.decodeRequest(b.bytes, groups: &groups)
                    session.ensure(rows: req.totalRows)
                    let got = try session.activationsBF16(req.activations)
                    guard options.dtype == .bf16 else { XCTAssertNil(got, "\(options)"); continue }
                    let p = try XCTUnwrap(got, "\(options)")
                    let inPayload = p >= b.bytes.baseAddress!.assumingMemoryBound(to: UInt16.self)
                        && UnsafeRawPointer(p) < b.bytes.baseAddress! + b.count
                    if options.shuffle || options.compression == .lz4 {
                        XCTAssertEqual(p, UnsafePointer(buffer), "\(options): decoded into the session's BF16 buffer")
                    } else {
                        XCTAssertTrue(inPayload, "raw BF16 is read in place")
                    }
                    XCTAssertEqual(Array(UnsafeBufferPointer(start: p, count: want.count)), want, "\(options)")
                }
            }
            XCTAssertEqual(session.inputBF16, buffer, "no regrowth for requests that fit")
            // A pooled session that outgrew its limit frees the BF16 buffer with the other row buffers, and grows it
            // again for the next request.
            session.releaseRows()
            XCTAssertEqual(session.capacityRows, 0)
            session.ensure(rows: Self.rows)
            let b = WireBuffer()
            try ExpertMessage.encodeRequest(into: b, layer: Self.layer, dim: Self.dim, groups: Self.groups, activations: Self.activations,
                                            gate: Self.gate, codec: ShardCodec(), options: Self.bf16Codecs[3])
            var groups: [ExpertGroup] = []
            let p = try XCTUnwrap(try session.activationsBF16(try ExpertMessage.decodeRequest(b.bytes, groups: &groups).activations))
            XCTAssertEqual(p, UnsafePointer(session.inputBF16))
            XCTAssertEqual(Array(UnsafeBufferPointer(start: p, count: want.count)), want)
        }
    }
}
