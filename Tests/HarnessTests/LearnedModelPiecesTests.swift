import Foundation
@testable import Harness
import Metrics
import XCTest

/// The pieces around the learned models: PNG sample grids, routing verdicts, profile path resolution.
final class LearnedModelPiecesTests: XCTestCase {
    /// Known answers: CRC-32 of "IEND" is 0xAE426082 (every PNG ends with it); Adler-32 of "Wikipedia" is 0x11E60398.
    func testPNGChecksumsAndLayout() {
        XCTAssertEqual(PNG.crc32(Data("IEND".utf8)), 0xAE42_6082)
        let z = PNG.zlibStored(Data("Wikipedia".utf8))
        XCTAssertEqual(Array(z.suffix(4)), [0x11, 0xE6, 0x03, 0x98])
        XCTAssertEqual(Array(z.prefix(3)), [0x78, 0x01, 0x01])  // zlib header, final stored block
        // Two 2×2 images, 2 columns, scale 1, gap 1: 7 × 4 pixels; the first image's top-left pixel is white.
        let png = ImageGrid(side: 2, columns: 2, scale: 1, gap: 1).png([1, 0, 0, 0, 0.5, 0.5, 0.5, 0.5])
        XCTAssertEqual(Array(png.prefix(8)), [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        let ihdr = png.subdata(in: 16..<24)
        XCTAssertEqual(Array(ihdr), [0, 0, 0, 7, 0, 0, 0, 4])
        XCTAssertEqual(Array(png.suffix(12)), [0, 0, 0, 0, 0x49, 0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82])
    }

    func testSampleGridFigureEmbedsOneDecodablePNGPerCellAndTheReference() throws {
        let cell = { (i: String, b: Int, d: Bool) in SampleGridFigure.Cell(integrator: i, budget: b, dlg: d, images: [Float](repeating: 0.5, count: 20 * 4), label: "FID-digits 1.5") }
        let fig = SampleGridFigure(title: "t <&>", side: 2, perCell: 4, columnsPerCell: 2, reference: ([Float](repeating: 1, count: 16), "real"),
                                   cells: [cell("kar1", 10, false), cell("kar1", 10, true), cell("em", 20, true)])
        let svg = fig.svg()
        XCTAssertTrue(svg.contains("t &lt;&amp;&gt;"))
        let uris = svg.components(separatedBy: "href=\"data:image/png;base64,").dropFirst().map { String($0.prefix { $0 != "\"" }) }
        XCTAssertEqual(uris.count, 4)  // the reference and three cells; the missing (em, 10 NFE) cells stay empty
        for uri in uris {
            let png = try XCTUnwrap(Data(base64Encoded: uri))
            XCTAssertEqual(Array(png.prefix(4)), [0x89, 0x50, 0x4E, 0x47])
            // 2 columns × 2 rows of 2×2 images at scale 3, gap 2: (2·(6+2)+2)² = 18 × 18 pixels.
            XCTAssertEqual(Array(png.subdata(in: 16..<24)), [0, 0, 0, 18, 0, 0, 0, 18])
        }
        for header in ["10 NFE, vanilla", "10 NFE, DLG", "20 NFE, DLG"] { XCTAssertTrue(svg.contains(header), header) }
    }

    func testVerdictsFollowTheirThresholds() {
        func dep(_ f: String, _ layer: Int, mi: Double, p: Double) -> RoutingDependence {
            // Deterministic routing tables scaled to the wanted strength are overkill: set the fields directly.
            var d = RoutingDependence(factor: f, layer: layer, table: [1, 1, 1, 1], rows: 2, experts: 2, permutations: 0)
            d.mutualInformationBits = mi; d.expertEntropyBits = 1; d.normalized = mi; d.nullMean = 0; d.excess = mi; d.pValue = p
            return d
        }
        let deps = (0..<4).flatMap { l in [dep("step", l, mi: 0.08, p: 0.005), dep("position", l, mi: 0.02, p: 0.005),
                                             dep("class", l, mi: 0.001, p: 0.3)] }
        let v = RoutingVerdicts.verdicts(deps, normalizedEntropyPerLayer: [0.90, 0.93, 0.95, 0.97])
        XCTAssertEqual(v.map(\.verdict), [.holds, .holds, .holds, .holds])
        let weak = RoutingVerdicts.verdicts((0..<4).map { dep("step", $0, mi: 0.005, p: $0 == 0 ? 0.005 : 0.5) } +
                                            (0..<4).map { dep("class", $0, mi: 0.2, p: 0.005) }, normalizedEntropyPerLayer: [0.9, 0.8, 0.7])
        XCTAssertEqual(weak.map(\.verdict), [.weak, .doesNotHold, .doesNotHold])
        XCTAssertEqual(RoutingVerdicts.spearman([1, 2, 3, 4], [10, 20, 30, 40]), 1, accuracy: 1e-12)
        XCTAssertEqual(RoutingVerdicts.spearman([1, 2, 3, 4], [4, 3, 2, 1]), -1, accuracy: 1e-12)
    }

    func testProfilePathsResolveAgainstTheProfileAndMustExist() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("prof-\(getpid())-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try "w0 127.0.0.1 7001 0 0-3\n".write(to: dir.appendingPathComponent("hosts"), atomically: true, encoding: .utf8)
        let text = """
        [run]
        seeds = [0]
        [[models]]
        id = "m"
        builtin = "digits-moe"
        weights = "missing.safetensors"
        [cluster]
        hosts = "hosts"
        """
        let path = dir.appendingPathComponent("p.toml").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try Profile.load(path: path)) { e in
            XCTAssertTrue("\(e)".contains("models[0].weights"), "\(e)")
            XCTAssertTrue("\(e)".contains(dir.standardizedFileURL.path + "/missing.safetensors"), "\(e)")
        }
        try text.replacingOccurrences(of: "missing.safetensors", with: "learned").write(toFile: path, atomically: true, encoding: .utf8)
        let p = try Profile.load(path: path)
        XCTAssertEqual(p.cluster?.hosts, dir.standardizedFileURL.path + "/hosts")
        XCTAssertEqual(p.models[0].weights, "learned")
    }
}
