// index.html of a results directory: one self-contained page (inline CSS and SVG, no scripts, no external assets)
// rendered only from results.json and the files it names, so `moebench report DIR` can re-render it any time.
import Cluster
import Foundation

public enum ReportRenderer {
    /// Renders and writes `<directory>/index.html`; returns its URL.
    @discardableResult
    public static func write(directory: URL) throws -> URL {
        let html = try render(directory: directory)
        let url = directory.appendingPathComponent("index.html")
        try ResultsStore.atomicWrite(Data(html.utf8), to: url)
        return url
    }

    public static func render(directory: URL) throws -> String {
        let doc = try ResultsStore.loadDocument(directory: directory)
        return render(doc) { name in
            guard (try? ResultsStore.checkName(name)) != nil else { return nil }
            return try? String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)
        }
    }

    /// Renders a document; `readFile` returns the text of a file named in it (nil when missing).
    public static func render(_ doc: ResultsDocument, readFile: (String) -> String?) -> String {
        let e = Markup.escape
        var h = """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>moebench — \(e(doc.profile.name)) — \(e(doc.startedAt))</title>
            <style>\(css)</style></head><body>
            <header><h1>moebench report: \(e(doc.profile.name))</h1>
            <p class="sub">\(e(doc.profile.description))</p>
            <p class="status \(e(doc.status.rawValue))">status: <b>\(e(doc.status.rawValue))</b> · started \(e(doc.startedAt)) · \(doc.finishedAt.map { "finished " + e($0) } ?? "updated " + e(doc.updatedAt)) · \(doc.parts.count) part\(doc.parts.count == 1 ? "" : "s")</p>
            </header>
            <nav><b>Contents</b><ol><li><a href="#metadata">Run metadata</a></li>
            """
        for p in doc.parts { h += "<li><a href=\"#part-\(e(p.id))\">\(e(p.title))</a></li>" }
        h += "</ol></nav>\n"
        if doc.status == .running {
            h += "<p class=\"warn\">This suite had not finished when the report was rendered (still running, or killed without a chance to record it); the parts below are those written so far.</p>\n"
        } else if doc.status == .interrupted {
            h += "<p class=\"warn\">This suite was interrupted at \(e(doc.finishedAt ?? doc.updatedAt)); the parts below are those that finished (a part marked interrupted shows what it had written). Continue it with <code>moebench suite --resume DIR</code>.</p>\n"
        }
        h += metadata(doc)
        for p in doc.parts { h += part(p, readFile: readFile) }
        h += "<footer>Rendered from results.json (schema \(e(doc.schema))). Re-render with <code>moebench report DIR</code>.</footer>\n</body></html>\n"
        return h
    }

    static func metadata(_ doc: ResultsDocument) -> String {
        let e = Markup.escape, m = doc.machine
        var rows: [(String, String)] = [
            ("host", m.hostname), ("OS", m.os), ("CPU model", m.cpuModel ?? "unknown"),
            ("cores (logical / active)", "\(m.logicalCores) / \(m.activeCores)"),
            ("NUMA (libnuma)", m.numaAvailable
                ? m.numaNodes.map { n in "node \(n.id): CPUs \(cpuList(n.cpus))" + (n.memoryBytes.map { ", \(String(format: "%.1f", Double($0) / 1_073_741_824)) GiB reported" } ?? "") }.joined(separator: "; ")
                : "not available"),
            ("OpenBLAS core / threads", "\(m.openblasCore ?? "unknown") / \(m.openblasThreads.map(String.init) ?? "unknown")"),
            ("git commit", (m.gitCommit ?? "unknown") + (m.gitDirty == true ? " (uncommitted changes)" : "")),
            ("seeds", doc.seeds.map(String.init).joined(separator: ", ")),
            ("profile", "\(doc.profile.name) (from \(doc.profile.source))"),
        ]
        for (k, v) in m.environment.sorted(by: { $0.key < $1.key }) { rows.append(("env \(k)", v)) }
        var h = "<section id=\"metadata\"><h2>Run metadata</h2><table class=\"kv\">"
        for (k, v) in rows { h += "<tr><th>\(e(k))</th><td>\(e(v))</td></tr>" }
        h += "</table>\n<details><summary>Profile (as parsed)</summary><pre>"
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        if let data = try? enc.encode(doc.profile), let text = String(data: data, encoding: .utf8) { h += e(text) }
        h += "</pre></details></section>\n"
        return h
    }

    /// "0-3,6" style list (the hosts file's range syntax).
    static func cpuList(_ cpus: [Int]) -> String { cpus.isEmpty ? "none" : formatExpertList(cpus) }

    static func part(_ p: ResultPart, readFile: (String) -> String?) -> String {
        let e = Markup.escape
        var h = "<section id=\"part-\(e(p.id))\"><h2>\(e(p.title))</h2>\n"
        if p.status != .done || p.error != nil {
            h += "<p class=\"warn\">status: \(e(p.status.rawValue))\(p.error.map { " — " + e($0) } ?? "")</p>\n"
        }
        if let s = p.startedAt, let f = p.finishedAt { h += "<p class=\"sub\">\(e(s)) → \(e(f))</p>\n" }
        if !p.summary.isEmpty { h += "<ul class=\"summary\">" + p.summary.map { "<li>\(e($0))</li>" }.joined() + "</ul>\n" }
        for t in p.tables { h += table(t) }
        for f in p.figures {
            h += "<figure id=\"fig-\(e(p.id))-\(e(f.id))\"><figcaption><b>\(e(f.title))</b>\(f.caption.map { " — " + e($0) } ?? "")</figcaption>\n"
            if let svg = readFile(f.file) {
                h += inlineSVG(svg) + "\n"
            } else {
                h += "<p class=\"warn\">figure file missing: \(e(f.file))</p>\n"
            }
            h += "</figure>\n"
        }
        return h + "</section>\n"
    }

    static func table(_ t: ResultTable) -> String {
        let e = Markup.escape
        var h = "<div class=\"table\" id=\"table-\(e(t.id))\"><h3>\(e(t.title))</h3>"
        if let n = t.note { h += "<p class=\"sub\">\(e(n))</p>" }
        h += "<div class=\"scroll\"><table><thead><tr>"
        for c in t.columns { h += "<th>\(e(c.name))\(c.unit.isEmpty ? "" : "<br><span class=\"unit\">[\(e(c.unit))]</span>")</th>" }
        h += "</tr></thead><tbody>"
        for row in t.rows {
            h += "<tr>"
            for cell in row {
                switch cell {
                case let .number(d): h += "<td class=\"num\">\(e(Markup.number(d)))</td>"
                case let .string(s): h += "<td>\(e(s))</td>"
                case let .bool(b): h += "<td>\(b ? "yes" : "no")</td>"
                case .null: h += "<td class=\"na\">—</td>"
                default: h += "<td>\(e("\(cell)"))</td>"
                }
            }
            h += "</tr>"
        }
        h += "</tbody></table></div>"
        if let csv = t.csv { h += "<p class=\"sub\">CSV: <a href=\"\(e(csv))\">\(e(csv))</a></p>" }
        return h + "</div>\n"
    }

    /// Drops an XML declaration / doctype so the SVG can sit inside HTML; scripts are removed (the page has none).
    static func inlineSVG(_ text: String) -> String {
        guard let start = text.range(of: "<svg") else { return "<p class=\"warn\">not an SVG document</p>" }
        var svg = String(text[start.lowerBound...])
        while let a = svg.range(of: "<script"), let b = svg.range(of: "</script>", range: a.upperBound..<svg.endIndex) {
            svg.removeSubrange(a.lowerBound..<b.upperBound)
        }
        return svg
    }

    static let css = """
        body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:1100px;padding:1em 2em;color:#222;line-height:1.4}
        h1{margin-bottom:.2em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}h3{margin:1.2em 0 .4em}
        .sub{color:#666;margin:.2em 0}.status.complete b{color:#1a7f37}.status.running b,.status.failed b,.status.interrupted b{color:#b35900}
        .warn{background:#fff4e5;border-left:4px solid #f0a020;padding:.4em .8em}
        nav{background:#f6f8fa;padding:.6em 1em;border-radius:6px}nav ol{margin:.3em 0}
        table{border-collapse:collapse;margin:.4em 0;font-size:.85em}th,td{border:1px solid #ccc;padding:.2em .45em}
        .scroll{max-width:100%;overflow-x:auto}td{overflow-wrap:anywhere;max-width:28em}figure svg{max-width:100%;height:auto}
        thead th{background:#f0f3f6;vertical-align:bottom}td.num{text-align:right;font-variant-numeric:tabular-nums}
        td.na{color:#999;text-align:center}.unit{font-weight:normal;color:#666;font-size:.85em}
        table.kv th{text-align:left;background:#f6f8fa}figure{margin:1em 0;overflow-x:auto}figcaption{margin-bottom:.3em}
        pre{background:#f6f8fa;padding:.6em;overflow-x:auto;font-size:.85em}footer{margin-top:3em;color:#888;font-size:.85em}
        """
}
