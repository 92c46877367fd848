import Foundation
import XCTest
@testable import DiT

/// Every bad checkpoint, config and input gives an error naming the file, key or field and what was expected.
final class CheckpointErrorTests: XCTestCase {
    let dir = FixtureTests.fixtures.appendingPathComponent("moe_timm")
    var config: DiTConfig { try! DiTConfig.load(jsonFile: dir.appendingPathComponent("config.json").path) }
    let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("moebench-ckpt-\(getpid())")

    override func setUp() { try? FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true) }
    override func tearDown() { try? FileManager.default.removeItem(at: scratch) }

    /// The good weights rewritten with `edit` applied to the list of (name, dtype, shape, bytes).
    func rewritten(_ name: String, _ edit: (inout [(String, SafetensorsDType, [Int], Data)]) -> Void) throws -> String {
        let good = try SafetensorsFile(path: dir.appendingPathComponent("weights.safetensors").path)
        var items = good.names.map { n -> (String, SafetensorsDType, [Int], Data) in
            let e = good[n]!
            return (n, e.dtype, e.shape, Data(bytes: e.data, count: e.byteCount))
        }
        edit(&items)
        var w = SafetensorsWriter()
        for (n, d, s, b) in items { w.add(n, dtype: d, shape: s, bytes: b) }
        let path = scratch.appendingPathComponent(name).path
        try w.write(to: path)
        return path
    }

    func assertLoadError(_ path: String, _ expected: DiTError, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try DiTWeights(config: config, source: .safetensors(path: path)), file: file, line: line) { e in
            XCTAssertEqual(e as? DiTError, expected, file: file, line: line)
            XCTAssertTrue("\(e)".contains(path), "error names the file: \(e)", file: file, line: line)
        }
    }

    func testMissingTensorNamesKeyAndShape() throws {
        let path = try rewritten("missing.safetensors") { $0.removeAll { $0.0 == "blocks.1.moe.gate.weight" } }
        assertLoadError(path, .missingTensor(path: path, key: "blocks.1.moe.gate.weight", expectedShape: [4, 32]))
    }

    func testUnexpectedTensorNamesKey() throws {
        let path = try rewritten("extra.safetensors") {
            $0.append(("blocks.0.attn.bogus.weight", .f32, [4, 32], Data(count: 4 * 32 * 4)))
        }
        assertLoadError(path, .unexpectedTensor(path: path, key: "blocks.0.attn.bogus.weight", shape: [4, 32]))
    }

    func testWrongShapeNamesBothShapes() throws {
        let path = try rewritten("shape.safetensors") { items in
            let i = items.firstIndex { $0.0 == "blocks.0.attn.qkv.weight" }!
            items[i] = (items[i].0, .f32, [96, 31], Data(count: 96 * 31 * 4))
        }
        assertLoadError(path, .shapeMismatch(path: path, key: "blocks.0.attn.qkv.weight", expected: [96, 32], got: [96, 31]))
        XCTAssertTrue(DiTError.shapeMismatch(path: path, key: "k", expected: [96, 32], got: [96, 31]).description
            .contains("[96, 31], expected [96, 32]"))
    }

    func testIntegerWeightsAreRejected() throws {
        let path = try rewritten("dtype.safetensors") { items in
            let i = items.firstIndex { $0.0 == "blocks.0.attn.proj.bias" }!
            items[i] = (items[i].0, .i64, [32], Data(count: 32 * 8))
        }
        assertLoadError(path, .unsupportedDType(path: path, key: "blocks.0.attn.proj.bias", dtype: "I64", expected: "F32, F16 or BF16"))
    }

    /// One NaN or Inf anywhere in a loaded tensor is an error naming the tensor, the index and the value; F16 and
    /// BF16 storage are checked by their own bit patterns.
    func testNonFiniteWeightsAreRejectedNamingTheTensor() throws {
        func poisoned(_ file: String, key: String, at index: Int, bits: (dtype: SafetensorsDType, pattern: [UInt8])) throws -> String {
            try rewritten(file) { items in
                let i = items.firstIndex { $0.0 == key }!
                var (name, dtype, shape, bytes) = items[i]
                if bits.dtype != dtype {   // re-store as F16/BF16 zeros (finite) first
                    dtype = bits.dtype
                    bytes = Data(count: shape.reduce(1, *) * 2)
                }
                let size = bits.pattern.count
                bytes.replaceSubrange(index * size..<(index + 1) * size, with: bits.pattern)
                items[i] = (name, dtype, shape, bytes)
            }
        }
        let nan = withUnsafeBytes(of: Float.nan.bitPattern.littleEndian) { [UInt8]($0) }
        let a = try poisoned("nan.safetensors", key: "blocks.1.attn.qkv.weight", at: 7, bits: (.f32, nan))
        assertLoadError(a, .nonFiniteWeight(path: a, key: "blocks.1.attn.qkv.weight", index: 7, value: "NaN", count: 1))
        let b = try poisoned("inf16.safetensors", key: "blocks.0.moe.experts.1.down_proj.weight", at: 3,
                             bits: (.f16, [0x00, 0xFC]))                         // F16 −Inf
        assertLoadError(b, .nonFiniteWeight(path: b, key: "blocks.0.moe.experts.1.down_proj.weight", index: 3,
                                            value: "-Inf", count: 1))
        let c = try poisoned("infbf16.safetensors", key: "final_layer.linear.bias", at: 0, bits: (.bf16, [0x80, 0x7F]))
        assertLoadError(c, .nonFiniteWeight(path: c, key: "final_layer.linear.bias", index: 0, value: "+Inf", count: 1))
        // A worker loads only its experts: expert 1's bad matrix stops a worker hosting it, not one hosting expert 0.
        XCTAssertThrowsError(try DiTWeights(config: config, source: .safetensors(path: b), scope: .experts([1]))) { e in
            XCTAssertTrue("\(e)".contains("blocks.0.moe.experts.1.down_proj.weight"), "\(e)")
        }
        XCTAssertNoThrow(try DiTWeights(config: config, source: .safetensors(path: b), scope: .experts([0])))
        // Largest finite values are fine.
        let big = withUnsafeBytes(of: Float.greatestFiniteMagnitude.bitPattern.littleEndian) { [UInt8]($0) }
        XCTAssertNoThrow(try DiTWeights(config: config, source: .safetensors(
            path: try poisoned("max.safetensors", key: "blocks.1.attn.qkv.weight", at: 7, bits: (.f32, big)))))
    }

    func testTruncatedFileAndBadHeader() {
        let bad = FixtureTests.fixtures.appendingPathComponent("bad")
        for (file, fragment) in [("truncated.safetensors", "outside the"), ("bad_header.safetensors", "header length 1048576")] {
            let path = bad.appendingPathComponent(file).path
            XCTAssertThrowsError(try DiTWeights(config: config, source: .safetensors(path: path))) { e in
                guard case let .badSafetensors(p, reason) = e as? DiTError else { return XCTFail("\(e)") }
                XCTAssertEqual(p, path)
                XCTAssertTrue(reason.contains(fragment), reason)
            }
        }
        XCTAssertThrowsError(try SafetensorsFile(path: scratch.appendingPathComponent("nope.safetensors").path)) { e in
            XCTAssertTrue("\(e)".contains("cannot open"), "\(e)")
        }
    }

    /// What users actually pass by mistake: a PyTorch checkpoint (zip or raw pickle), a directory, an empty file.
    func testPyTorchCheckpointsDirectoriesAndEmptyFilesGetAHint() throws {
        let zip = scratch.appendingPathComponent("model.pt").path
        try (Data([0x50, 0x4B, 0x03, 0x04]) + Data(count: 600)).write(to: URL(fileURLWithPath: zip))
        let pickle = scratch.appendingPathComponent("old.pth").path
        try (Data([0x80, 0x02]) + Data(count: 100)).write(to: URL(fileURLWithPath: pickle))
        let empty = scratch.appendingPathComponent("empty.safetensors").path
        try Data().write(to: URL(fileURLWithPath: empty))
        for (path, fragment) in [(zip, "tools/convert_checkpoint.py"), (pickle, "PyTorch checkpoint"), (empty, "the file is empty"),
                                 (scratch.path, "is a directory")] {
            XCTAssertThrowsError(try SafetensorsFile(path: path), path) { XCTAssertTrue("\($0)".contains(fragment), "\($0)") }
        }
    }

    /// Headers with non-integer offsets or sizes that overflow are errors, not traps.
    func testHostileHeadersAreErrors() throws {
        let headers = [
            #"{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0.5, 4]}}"#,
            #"{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 1e300]}}"#,
            #"{"a": {"dtype": "F32", "shape": [1000000000000, 1000000000000], "data_offsets": [0, 4]}}"#,
            #"{"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}"#,
        ]
        for (i, header) in headers.enumerated() {
            var data = Data()
            var n = UInt64(header.utf8.count).littleEndian
            withUnsafeBytes(of: &n) { data.append(contentsOf: $0) }
            data.append(Data(header.utf8))
            data.append(Data(count: 8))
            let path = scratch.appendingPathComponent("hostile\(i).safetensors").path
            try data.write(to: URL(fileURLWithPath: path))
            XCTAssertThrowsError(try SafetensorsFile(path: path), header) { e in
                guard case .badSafetensors = e as? DiTError else { return XCTFail("\(e)") }
            }
        }
    }

    func testWeightsForAnotherConfigAreRejected() throws {
        var other = config
        other.hiddenSize = 48
        XCTAssertThrowsError(try DiTWeights(config: other, source: .safetensors(path: dir.appendingPathComponent("weights.safetensors").path))) { e in
            guard case .shapeMismatch = e as? DiTError else { return XCTFail("\(e)") }
        }
    }

    // MARK: Configs

    func testBuiltinNames() throws {
        let s = try DiTConfig.named("DiT-MoE-S/2-8E2A")
        XCTAssertEqual([s.depth, s.hiddenSize, s.numHeads, s.patchSize, s.numExperts, s.numExpertsPerTok, s.tokens], [12, 384, 6, 2, 8, 2, 256])
        XCTAssertFalse(s.useFlashAttn)
        XCTAssertTrue(try DiTConfig.named("DiT-MoE-XL/2-8E2A").useFlashAttn)
        XCTAssertEqual(try DiTConfig.named("DiT-MoE-G/2-16E2A").numExperts, 16)
        XCTAssertTrue(try DiTConfig.named("DiT-B/4").dense)
        XCTAssertEqual(try DiTConfig.named("DiT-XL/2@512").tokens, 1024)
        // Upstream state-dict key counts: L·(10+3E)+12 (timm attention), L·(14+3E)+12 (flash attention).
        XCTAssertEqual(s.tensorSpecs.count, 420)
        XCTAssertEqual(try DiTConfig.named("DiT-MoE-XL/2-8E2A").tensorSpecs.count, 1076)
        XCTAssertEqual(try DiTConfig.named("DiT-MoE-G/2-16E2A").tensorSpecs.count, 2492)
        for bad in ["DiT-MoE-S/3-8E2A", "DiT-MoE-S/2-2E4A", "DiT-G/2", "DiT-MoE-G/4-16E2A", "dit-s/2", "DiT-M/2", "DiT-MoE-S/2"] {
            XCTAssertThrowsError(try DiTConfig.named(bad), bad) { XCTAssertTrue("\($0)".contains(bad), "\($0)") }
        }
    }

    func testJSONConfigErrorsNameTheKey() throws {
        func write(_ text: String) throws -> String {
            let path = scratch.appendingPathComponent("c\(text.hashValue).json").path
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }
        let cases: [(String, String)] = [
            (#"{"hidden_size": 32, "depth": 2, "num_heads": 4, "hiden": 1}"#, "'hiden'"),
            (#"{"hidden_size": 32, "depth": 2, "num_heads": 5}"#, "'num_heads'"),
            (#"{"hidden_size": "big", "depth": 2, "num_heads": 4}"#, "'hidden_size'"),
            (#"{"hidden_size": 32, "num_heads": 4}"#, "'depth'"),
            (#"{"hidden_size": 32, "depth": 2, "num_heads": 4, "num_experts": 2, "num_experts_per_tok": 3}"#, "'num_experts_per_tok'"),
            (#"{"hidden_size": 32, "depth": 2, "num_heads": 4, "use_flash_attn": 1}"#, "'use_flash_attn'"),
            (#"[1, 2]"#, "JSON object"),
        ]
        for (text, fragment) in cases {
            let path = try write(text)
            XCTAssertThrowsError(try DiTConfig.load(jsonFile: path), text) { e in
                XCTAssertTrue("\(e)".contains(fragment) && "\(e)".contains(path), "\(e)")
            }
        }
        // Upstream keys we do not use are accepted.
        let ok = try write(#"{"hidden_size": 32, "depth": 2, "num_heads": 4, "class_dropout_prob": 0.1, "pretraining_tp": 2}"#)
        XCTAssertEqual(try DiTConfig.load(jsonFile: ok).hiddenSize, 32)
    }

    // MARK: Inputs

    func testBadInputsNameTheTensor() throws {
        func input(_ build: (inout SafetensorsWriter) -> Void) throws -> String {
            var w = SafetensorsWriter()
            build(&w)
            let path = scratch.appendingPathComponent("in\(UUID().uuidString).safetensors").path
            try w.write(to: path)
            return path
        }
        let x = [Float](repeating: 0, count: 2 * 4 * 8 * 8)
        let cases: [(String, (inout SafetensorsWriter) -> Void)] = [
            ("'x'", { $0.add("x", shape: [2, 3, 8, 8], floats: [Float](repeating: 0, count: 2 * 3 * 64)); $0.add("t", shape: [2], floats: [1, 2]); $0.add("y", shape: [2], int64s: [1, 2]) }),
            ("'t'", { $0.add("x", shape: [2, 4, 8, 8], floats: x); $0.add("y", shape: [2], int64s: [1, 2]) }),
            ("'y'", { $0.add("x", shape: [2, 4, 8, 8], floats: x); $0.add("t", shape: [2], floats: [1, 2]); $0.add("y", shape: [2], floats: [1, 2]) }),
            ("'y[1]'", { $0.add("x", shape: [2, 4, 8, 8], floats: x); $0.add("t", shape: [2], floats: [1, 2]); $0.add("y", shape: [2], int64s: [1, 11]) }),
            ("'t'", { $0.add("x", shape: [2, 4, 8, 8], floats: x); $0.add("t", shape: [3], floats: [1, 2, 3]); $0.add("y", shape: [2], int32s: [1, 2]) }),
        ]
        for (fragment, build) in cases {
            let path = try input(build)
            XCTAssertThrowsError(try ForwardInput.load(path: path, config: config)) { e in
                XCTAssertTrue("\(e)".contains(fragment) && "\(e)".contains(path), "expected \(fragment): \(e)")
            }
        }
        // I32 labels are accepted.
        let ok = try input { $0.add("x", shape: [2, 4, 8, 8], floats: x); $0.add("t", shape: [2], floats: [1, 2]); $0.add("y", shape: [2], int32s: [1, 10]) }
        XCTAssertEqual(try ForwardInput.load(path: ok, config: config).y, [1, 10])
        // CFG needs an even batch.
        let model = try DiTModel(config: config, source: .random(seed: 1))
        let odd = ForwardInput(x: [Float](repeating: 0, count: 4 * 64), t: [1], y: [1], batch: 1)
        XCTAssertThrowsError(try ForwardResult.run(model: model, input: odd, cfgScale: 1.5)) { XCTAssertTrue("\($0)".contains("even batch")) }
    }
}
