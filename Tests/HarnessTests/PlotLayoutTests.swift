import Foundation
import XCTest
@testable import Harness

/// Layout logic of the figures: point labels that neither collide nor leave the frame, log axes that fit the data,
/// bar-chart value axes without an empty upper half.
final class PlotLayoutTests: XCTestCase {
    let frame = LabelBox(x: 0, y: 0, width: 200, height: 100)

    func box(_ text: String, _ at: (x: Double, y: Double, anchor: String), fontSize: Double) -> LabelBox {
        let (w, h) = LabelPlacer.size(text, fontSize: fontSize)
        return LabelBox(x: at.anchor == "end" ? at.x - w : at.x, y: at.y + 1.5 - h, width: w, height: h)
    }

    func inside(_ b: LabelBox) -> Bool { b.x >= frame.x && b.y >= frame.y && b.x + b.width <= frame.x + frame.width && b.y + b.height <= frame.y + frame.height }

    /// Four labels at one point (four series' best samplers at the same NFE) get four boxes that do not overlap,
    /// all inside the frame.
    func testLabelsAtOnePointDoNotOverlap() {
        var placer = LabelPlacer(frame: frame)
        let texts = ["KAR1", "KAR2", "EM", "RK45"]
        let boxes = texts.map { box($0, placer.place($0, at: 100, 50, fontSize: 9), fontSize: 9) }
        for (i, a) in boxes.enumerated() {
            XCTAssertTrue(inside(a), "\(texts[i]) \(a)")
            for b in boxes[(i + 1)...] { XCTAssertEqual(a.overlap(b), 0, "\(a) \(b)") }
        }
        XCTAssertEqual(placer.placed, boxes.map { LabelBox(x: $0.x, y: $0.y, width: $0.width, height: $0.height) })
    }

    /// A point at the right edge of the frame is labelled to its left (anchor "end"); at the top edge, below it.
    func testLabelsStayInsideTheFrame() {
        var placer = LabelPlacer(frame: frame)
        let right = placer.place("0.0216 @ 42.3", at: 198, 50, fontSize: 10)
        XCTAssertEqual(right.anchor, "end")
        XCTAssertTrue(inside(box("0.0216 @ 42.3", right, fontSize: 10)))
        let top = placer.place("KAR1", at: 10, 1, fontSize: 9)
        XCTAssertTrue(inside(box("KAR1", top, fontSize: 9)))
        XCTAssertGreaterThan(top.y, 1)
    }

    /// Markers are obstacles: a label is not put over another series' marker when a free place exists.
    func testLabelsAvoidMarkers() {
        var placer = LabelPlacer(frame: frame)
        let (w, h) = LabelPlacer.size("EM", fontSize: 9)
        // A marker exactly where the first choice (right, above) would go.
        placer.obstacles = [LabelBox(x: 105, y: 50 - h - 3, width: w, height: h)]
        let b = box("EM", placer.place("EM", at: 100, 50, fontSize: 9), fontSize: 9)
        XCTAssertEqual(b.overlap(placer.obstacles[0]), 0)
    }

    /// A log NFE axis over 10…23 ends just above 23 (not at 50, half empty) with at least 3 ticks (10, 15, 20),
    /// and the labelled best point at the right end is anchored to its left.
    func testLogAxisFitsTheData() {
        let s = PlotSeries(name: "a", points: [PlotPoint(x: 10, y: 1), PlotPoint(x: 23.4, y: 0.5)], color: "#000", labelBest: true)
        let svg = LinePlot(title: "T", panels: [PlotPanel(title: "P", xLabel: "NFE", yLabel: "FD", xScale: .log, series: [s])]).svg()
        for t in [">10<", ">15<", ">20<"] { XCTAssertTrue(svg.contains(t), t) }
        XCTAssertFalse(svg.contains(">50<"))
        XCTAssertTrue(svg.contains("text-anchor=\"end\" font-size=\"10\" fill=\"#000\">0.5 @ 23.4<"), svg)
    }

    /// Bar-chart value axis: the top has 8% head room over the largest bar and 3–5 tick intervals of 1, 2, 2.5
    /// or 5 × 10^k; 9.6 ms gets 0…12.5 (it got 0…20 before), a relative load of 1.04 gets 0…1.25 (was 0…2).
    func testBarChartValueAxis() {
        XCTAssertEqual(BarChart.valueAxis(max: 9.6).top, 12.5, accuracy: 1e-12)
        XCTAssertEqual(BarChart.valueAxis(max: 9.6).step, 2.5, accuracy: 1e-12)
        XCTAssertEqual(BarChart.valueAxis(max: 1.04).top, 1.25, accuracy: 1e-12)
        var m = 0.013
        while m < 5e4 {
            let (top, step) = BarChart.valueAxis(max: m)
            XCTAssertGreaterThanOrEqual(top, 1.08 * m * (1 - 1e-12), "\(m)")
            XCTAssertLessThan(top, 2 * 1.08 * m, "\(m)")
            let intervals = (top / step).rounded()
            XCTAssertEqual(top / step, intervals, accuracy: 1e-9, "\(m)")
            XCTAssertTrue((3...5).contains(Int(intervals)), "\(m): \(intervals) intervals")
            m *= 1.37
        }
    }
}
