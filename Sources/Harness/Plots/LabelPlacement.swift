import Foundation

// Where to put short text labels beside points so that they neither overlap each other nor leave the plot frame.
// Greedy, in the order labels are added: each label tries the candidate offsets around its point (right above,
// right below, left above, left below, then the same further out) and takes the first whose box stays inside the
// frame and overlaps no box placed before it, nor a marker; when none fits, the candidate with the least overlapping
// area. Text boxes are estimated from the character count (a proportional font's mean advance ≈ 0.6 em).

public struct LabelBox: Equatable, Sendable {
    public var x: Double, y: Double, width: Double, height: Double   // top-left corner, pixels
    public init(x: Double, y: Double, width: Double, height: Double) { self.x = x; self.y = y; self.width = width; self.height = height }

    func overlap(_ o: LabelBox) -> Double {
        max(0, min(x + width, o.x + o.width) - max(x, o.x)) * max(0, min(y + height, o.y + o.height) - max(y, o.y))
    }
}

public struct LabelPlacer {
    /// The plot frame labels must stay inside.
    public let frame: LabelBox
    public private(set) var placed: [LabelBox] = []
    /// Boxes labels must avoid without being labels themselves (markers of labelled points).
    public var obstacles: [LabelBox] = []

    public init(frame: LabelBox) { self.frame = frame }

    /// Estimated box of `text` at `fontSize` px.
    public static func size(_ text: String, fontSize: Double) -> (width: Double, height: Double) {
        (0.6 * fontSize * Double(text.count), fontSize)
    }

    /// Places `text` near (px, py) and returns the baseline start (x, y) and the anchor to draw it with
    /// ("start": x is the left edge, "end": the right edge).
    public mutating func place(_ text: String, at px: Double, _ py: Double, fontSize: Double,
                               preferBelow: Bool = false) -> (x: Double, y: Double, anchor: String) {
        let (w, h) = Self.size(text, fontSize: fontSize)
        var candidates: [(dx: Double, dy: Double, right: Bool)] = []   // dy: offset of the box's top from py
        for reach in [1.0, 2.2, 3.4] {
            let gap = 5 * reach
            let above = -h - gap + 2, below = gap - 2
            let vertical = preferBelow ? [below, above] : [above, below]
            for right in [true, false] { for dy in vertical { candidates.append((gap, dy, right)) } }
        }
        var best: (box: LabelBox, right: Bool, cost: Double)?
        for c in candidates {
            let bx = c.right ? px + c.dx : px - c.dx - w
            let box = LabelBox(x: bx, y: py + c.dy, width: w, height: h)
            let outside = w * h - box.overlap(frame)
            let cost = outside * 4 + (placed + obstacles).reduce(0) { $0 + box.overlap($1) }
            if best == nil || cost < best!.cost { best = (box, c.right, cost) }
            if cost == 0 { break }
        }
        let chosen = best!
        placed.append(chosen.box)
        let baseline = chosen.box.y + chosen.box.height - 1.5
        return chosen.right ? (chosen.box.x, baseline, "start") : (chosen.box.x + w, baseline, "end")
    }
}
