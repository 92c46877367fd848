import XCTest
import Wire
@testable import Harness

final class ProfileTests: XCTestCase {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    func testDefaultProfileParsesAndMatchesTheEmbeddedCopy() throws {
        let path = Self.repo.appendingPathComponent("profiles/default.toml").path
        let fromFile = try Profile.load(path: path)
        let text = try String(contentsOfFile: path, encoding: .utf8)
        XCTAssertEqual(text, EmbeddedProfiles.defaultTOML + "\n", "regenerate EmbeddedProfiles.swift from profiles/default.toml")
        var embedded = try Profile.embeddedDefault()
        XCTAssertEqual(embedded.source, "<embedded default>")
        embedded.source = fromFile.source
        XCTAssertEqual(embedded, fromFile)

        let p = fromFile
        XCTAssertEqual(p.name, "default")
        XCTAssertEqual(p.models.map(\.id), ["moe", "dense", "moe-alpha0", "moe-noshared"])
        XCTAssertEqual(p.models.map(\.weights), ["learned", "learned", "learned", "learned"])
        XCTAssertEqual(p.cost?.baselines, ["dense"])
        XCTAssertEqual(p.cost?.scenarios, [.singleStream, .offline, .server])
        XCTAssertEqual(p.cost?.execution, [.inProcess, .cluster])
        // Relative paths resolve against the profile's directory, to absolute paths.
        let repo = URL(fileURLWithPath: path).deletingLastPathComponent().deletingLastPathComponent().standardizedFileURL.path
        XCTAssertEqual(p.cluster, ClusterSettings(hosts: repo + "/hosts", launch: .local, secretFile: nil))
        XCTAssertEqual(p.codecs, [ShardOptions(dtype: .f32, shuffle: true, compression: .auto)])
        XCTAssertEqual(p.loadBalance?.heatmapLayers, [0, 3])
        XCTAssertEqual(p.loadBalance?.ablations, ["moe-alpha0", "moe-noshared"])
        XCTAssertEqual(p.curves?.score, "model")
        XCTAssertEqual(p.curves?.models, ["moe", "dense"])
        XCTAssertEqual(p.curves?.integrators.count, 6)
        XCTAssertEqual(p.curves?.testbed.dim, 16)
        XCTAssertEqual(p.allSeeds, [0])
    }

    func testTinyProfileAndDefaults() throws {
        let p = try Profile.load(path: Self.repo.appendingPathComponent("profiles/tiny.toml").path)
        XCTAssertEqual(p.name, "tiny")
        XCTAssertEqual(p.model("moe")?.builtinShape?.depth, 1)
        XCTAssertEqual(p.model("moe")?.builtinShape?.tokens, 16)
        XCTAssertNil(p.cluster)
        XCTAssertEqual(p.loadBalance?.sampler, .ddim)          // default
        XCTAssertEqual(p.loadBalance?.samplesPerClass, 1)       // default
        XCTAssertEqual(p.curves?.testbed.isotropicStd, 0.05)    // default
        XCTAssertEqual(p.run.maxDurationSeconds, nil)
    }

    func testMinimalProfileNameFromFileAndDisabledSections() throws {
        let p = try Profile.parse(toml: """
            [[models]]
            id = "m"
            builtin = "DiT-MoE-B/4-16E2A"
            [cost]
            enabled = false
            models = ["m"]
            """, file: "/x/my-suite.toml")
        XCTAssertEqual(p.name, "my-suite")
        XCTAssertNil(p.cost)
        XCTAssertEqual(p.run.seeds, [0])
        let shape = try XCTUnwrap(p.model("m")?.builtinShape)
        XCTAssertEqual([shape.depth, shape.hidden, shape.patchSize, shape.experts, shape.topK], [12, 768, 4, 16, 2])
    }

    func testBuiltinNames() {
        XCTAssertEqual(BuiltinModels.shape("DiT-MoE-XL/2-8E2A")?.flashLayout, true)
        XCTAssertEqual(BuiltinModels.shape("DiT-XL/2")?.flashLayout, false)
        XCTAssertEqual(BuiltinModels.shape("DiT-S/2", imageSize: 512)?.tokens, 1024)
        for bad in ["DiT-MoE-S/2", "DiT-G/2", "DiT-MoE-G/4-16E2A", "DiT-S/3", "DiT-MoE-S/2-2E4A", "dit-s/2", "DiT-M/2"] {
            XCTAssertNil(BuiltinModels.shape(bad), bad)
        }
    }

    // MARK: errors: each names the file and key path

    func assertError(_ toml: String, _ kind: ProfileError.Kind, _ keyPath: String, contains: String,
                     file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try Profile.parse(toml: toml, file: "p.toml"), file: file, line: line) { e in
            guard let e = e as? ProfileError else { return XCTFail("not a ProfileError: \(e)", file: file, line: line) }
            XCTAssertEqual(e.kind, kind, "\(e)", file: file, line: line)
            XCTAssertEqual(e.keyPath, keyPath, "\(e)", file: file, line: line)
            XCTAssertTrue(e.description.hasPrefix("p.toml"), "\(e)", file: file, line: line)
            XCTAssertTrue(e.description.contains(contains), "\(e)", file: file, line: line)
        }
    }

    let models = """
        [[models]]
        id = "moe"
        builtin = "DiT-MoE-S/2-8E2A"
        [[models]]
        id = "dense"
        builtin = "DiT-S/2"

        """

    func testSyntaxErrorHasLine() {
        XCTAssertThrowsError(try Profile.parse(toml: "name = \"a\"\n[run\nseeds = [1]\n", file: "p.toml")) { e in
            let e = e as! ProfileError
            XCTAssertEqual(e.kind, .syntax)
            XCTAssertEqual(e.line, 2)
            XCTAssertTrue(e.description.hasPrefix("p.toml:2"), e.description)
        }
    }

    func testUnknownKeys() {
        assertError("colour = 1\n", .unknownKey, "colour", contains: "expected one of: name, description")
        assertError(models + "[cost]\nmodels = [\"moe\"]\nbatch_size = [1]\n", .unknownKey, "cost.batch_size",
                    contains: "batch_sizes")
        assertError(models + "[curves.testbed]\ndims = 3\n", .unknownKey, "curves.testbed.dims", contains: "dim")
        assertError("[[models]]\nid = \"a\"\nbuiltin = \"DiT-S/2\"\nwieghts = \"w\"\n", .unknownKey, "models[0].wieghts",
                    contains: "weights")
    }

    func testWrongTypes() {
        assertError(models + "[cost]\nmodels = [\"moe\"]\nbatch_sizes = [1, 2, \"4\"]\n", .wrongType,
                    "cost.batch_sizes[2]", contains: "expected an integer, found a string")
        assertError("[run]\nseeds = 3\n", .wrongType, "run.seeds", contains: "expected an array")
        assertError("[run]\nmin_duration_s = \"5s\"\n", .wrongType, "run.min_duration_s", contains: "expected a number")
        assertError("cost = 1\n", .wrongType, "cost", contains: "expected a table")
        assertError(models + "[[codec]]\nshuffle = \"yes\"\n", .wrongType, "codec[0].shuffle", contains: "true or false")
    }

    func testAnEmptyCurvesTableIsTheStandardSettingsTheCommandAlsoStartsFrom() throws {
        let p = try Profile.parse(toml: "[curves]\n", file: "p.toml")
        XCTAssertEqual(p.curves, CurvesSettings.standard)
        XCTAssertNoThrow(try CurvesSettings.standard.validate())
        XCTAssertEqual(CurvesSettings.Problem(key: "testbed.sigma_max", message: "").flag, "--sigma-max")
        XCTAssertEqual(CurvesSettings.Problem(key: "dlg_skip_fraction", message: "").flag, "--dlg-skip-fraction")
        XCTAssertEqual(CurvesSettings.Problem(key: "fid_ref", message: "").flag, "--fid-ref")
        let c = CurvesSettings.standard.sweepConfig(chains: 300)   // 1000 samples: the largest divisor ≤ 300 is 250
        XCTAssertEqual(c.chains, 250)
        XCTAssertEqual(c.budgets, [10, 20, 50, 100])
    }

    /// The latent-FID keys are CurvesSettings' (so known), but a suite refuses them by name.
    func testLatentFIDKeysAreKnownButRefusedInSuites() {
        assertError("[curves]\nscore = \"model\"\nmodels = [\"m\"]\ndlg = \"off\"\ndecoder = \"vae.safetensors\"\nfid_ref = \"r.npz\"\ninception = \"i.safetensors\"\n",
                    .badValue, "curves.decoder", contains: "moebench curves --config")
        assertError("[curves]\nkid = true\n", .badValue, "curves.kid", contains: "not available in suites")
    }

    func testBadValues() {
        assertError(models + "[cost]\nmodels = [\"moe\"]\nbatch_sizes = [1, 2, 0]\n", .badValue, "cost.batch_sizes[2]",
                    contains: "expected a batch size ≥ 1, found 0")
        assertError(models + "[cost]\nmodels = [\"moe\"]\nscenarios = [\"single_stream\", \"burst\"]\n", .badValue,
                    "cost.scenarios[1]", contains: "\"single_stream\", \"offline\", \"server\"")
        assertError(models + "[[codec]]\nlz4 = \"maybe\"\n", .badValue, "codec[0].lz4", contains: "\"on\", \"off\", \"auto\"")
        assertError(models + "[[codec]]\ndtype = \"fp8\"\n", .badValue, "codec[0].dtype", contains: "\"bf16\"")
        assertError("[run]\nseeds = [-1]\n", .badValue, "run.seeds[0]", contains: "seed ≥ 0")
        assertError("[run]\nmin_duration_s = 10\nmax_duration_s = 5\n", .badValue, "run.max_duration_s", contains: "≥ run.min_duration_s")
        assertError("[[models]]\nid = \"a\"\nbuiltin = \"DiT-MoE-Q/2-8E2A\"\n", .badValue, "models[0].builtin",
                    contains: "DiT-MoE-S/2-8E2A")
        assertError("[[models]]\nid = \"a\"\nbuiltin = \"DiT-S/8\"\nimage_size = 96\n", .badValue, "models[0].image_size",
                    contains: "not divisible")
        assertError(models + "[[models]]\nid = \"moe\"\nbuiltin = \"DiT-S/2\"\n", .badValue, "models[2].id", contains: "duplicate")
        assertError(models + "[curves]\nintegrators = [\"heun\"]\n", .badValue, "curves.integrators[0]", contains: "\"kar1\"")
        assertError(models + "[curves]\nnfe = []\n", .badValue, "curves.nfe", contains: "non-empty")
        assertError(models + "[curves]\nnfe = [10, 3]\n", .badValue, "curves.nfe[1]", contains: "4...100000")
        assertError(models + "[curves]\ndlg_eps = -1\n", .badValue, "curves.dlg_eps", contains: "1e-06…100.0")
        assertError(models + "[curves.testbed]\ndim = 4\nrank = 5\n", .badValue, "curves.testbed.rank", contains: "1…dim")
        assertError(models + "[load_balance]\nmodel = \"moe\"\nheatmap_layers = [12]\n", .badValue,
                    "load_balance.heatmap_layers[0]", contains: "0...11")
        assertError(models + "[cost]\nmodels = [\"moe\"]\nexecution = [\"in_process\", \"cluster\"]\n", .badValue,
                    "cost.execution[1]", contains: "[cluster]")
    }

    func testMissingKeysAndReferences() {
        assertError("[[models]]\nbuiltin = \"DiT-S/2\"\n", .missingKey, "models[0].id", contains: "expected a string")
        assertError("[[models]]\nid = \"a\"\n", .missingKey, "models[0].builtin", contains: "`config`")
        assertError(models + "[cluster]\nlaunch = \"local\"\n", .missingKey, "cluster.hosts", contains: "missing")
        assertError(models + "[cost]\nmodels = [\"moe\"]\nscenarios = [\"server\"]\n", .missingKey,
                    "cost.server.target_qps", contains: "[cost.server]")
        assertError(models + "[cost]\nmodels = [\"moe\", \"nope\"]\n", .badReference, "cost.models[1]",
                    contains: "unknown model id \"nope\"; defined: dense, moe")
        assertError(models + "[cost]\nmodels = [\"moe\"]\nbaselines = [\"moe\"]\n", .badReference, "cost.baselines[0]",
                    contains: "expected a dense model")
        assertError(models + "[load_balance]\nmodel = \"dense\"\n", .badReference, "load_balance.model",
                    contains: "expected an MoE model")
    }

    func testUnreadableFile() {
        XCTAssertThrowsError(try Profile.load(path: "/nonexistent/x.toml")) { e in
            XCTAssertEqual((e as? ProfileError)?.kind, .unreadable)
            XCTAssertTrue("\(e)".hasPrefix("/nonexistent/x.toml"))
        }
    }
}
