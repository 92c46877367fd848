import Foundation

/// What the curves' numbers look like: one small grid of generated digits per (integrator, budget, mode) cell, the
/// held-out real digits as the first row, each labelled with its FID-digits. The grids are PNGs embedded as data
/// URIs, so the SVG (and the HTML report that inlines it) stays a single self-contained file.
public struct SampleGridFigure {
    public struct Cell {
        public var integrator: String
        public var budget: Int
        public var dlg: Bool
        /// `[n, side·side]` row-major, pixels in [0, 1] (0 = black).
        public var images: [Float]
        public var label: String
        public init(integrator: String, budget: Int, dlg: Bool, images: [Float], label: String) {
            self.integrator = integrator; self.budget = budget; self.dlg = dlg; self.images = images; self.label = label
        }
    }

    public var title: String
    public var side: Int
    public var perCell: Int
    public var columnsPerCell: Int
    public var reference: (images: [Float], label: String)?
    public var cells: [Cell]

    public init(title: String, side: Int, perCell: Int = 16, columnsPerCell: Int = 8,
                reference: (images: [Float], label: String)?, cells: [Cell]) {
        self.title = title; self.side = side; self.perCell = perCell; self.columnsPerCell = columnsPerCell
        self.reference = reference; self.cells = cells
    }

    public func svg() -> String {
        let integrators = cells.map(\.integrator).uniqued()
        let columns = cells.map { Column(budget: $0.budget, dlg: $0.dlg) }.uniqued().sorted()
        let grid = ImageGrid(side: side, columns: columnsPerCell, scale: 3, gap: 2)
        let rowsPerCell = (perCell + columnsPerCell - 1) / columnsPerCell
        let imgW = Double(columnsPerCell * (side * 3 + 2) + 2), imgH = Double(rowsPerCell * (side * 3 + 2) + 2)
        let left = 60.0, top = 48.0, cellW = imgW + 12, cellH = imgH + 30
        let rows = integrators.count + (reference == nil ? 0 : 1)
        let width = left + Double(max(columns.count, 1)) * cellW + 10, height = top + Double(rows) * cellH + 10
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" font-family=\"sans-serif\" font-size=\"11\">"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>"
        s += "<text x=\"10\" y=\"18\" font-size=\"13\">\(Markup.escape(title))</text>"
        for (j, c) in columns.enumerated() {
            s += "<text x=\"\(left + Double(j) * cellW)\" y=\"\(top - 8)\" font-weight=\"bold\">budget \(c.budget) NFE, \(c.dlg ? "DLG" : "vanilla")</text>"
        }
        func image(_ images: [Float], x: Double, y: Double, label: String) {
            let shown = Array(images.prefix(perCell * side * side))
            let png = grid.png(shown).base64EncodedString()
            let h = Double(max(1, (shown.count / (side * side) + columnsPerCell - 1) / columnsPerCell) * (side * 3 + 2) + 2)
            s += "<image x=\"\(x)\" y=\"\(y)\" width=\"\(Int(imgW))\" height=\"\(Int(h))\" style=\"image-rendering:pixelated\" href=\"data:image/png;base64,\(png)\"/>"
            s += "<text x=\"\(x)\" y=\"\(y + imgH + 13)\">\(Markup.escape(label))</text>"
        }
        var y = top
        if let reference {
            s += "<text x=\"10\" y=\"\(y + imgH / 2)\">real</text>"
            image(reference.images, x: left, y: y, label: reference.label)
            y += cellH
        }
        for integrator in integrators {
            s += "<text x=\"10\" y=\"\(y + imgH / 2)\">\(Markup.escape(integrator))</text>"
            for (j, c) in columns.enumerated() {
                guard let cell = cells.first(where: { $0.integrator == integrator && $0.budget == c.budget && $0.dlg == c.dlg }) else { continue }
                image(cell.images, x: left + Double(j) * cellW, y: y, label: cell.label)
            }
            y += cellH
        }
        return s + "</svg>"
    }

    private struct Column: Hashable, Comparable {
        var budget: Int
        var dlg: Bool
        static func < (a: Column, b: Column) -> Bool { (a.budget, a.dlg ? 1 : 0) < (b.budget, b.dlg ? 1 : 0) }
    }
}

private extension Array where Element: Hashable {
    func uniqued() -> [Element] {
        var seen = Set<Element>()
        return filter { seen.insert($0).inserted }
    }
}
