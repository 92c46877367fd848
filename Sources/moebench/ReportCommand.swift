import ArgumentParser
import Foundation
import Harness

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Re-render index.html of a results directory from its results.json, CSV and SVG files.",
        discussion: """
            DIR is a directory written by `moebench suite`, e.g. results/20260101-120000-default. The page is \
            self-contained (inline CSS and SVG, no scripts, no network) and shows every table and figure named in \
            results.json together with the run's metadata. Works on an interrupted suite too: it shows the parts \
            that finished. The results.json format is documented in docs/results.md.

            With --redraw the figures are drawn again first, from the data the directory stores (results.json, the \
            heatmap CSVs, curves/*.jsonl and the curves samples), with this build's plotting code; a figure whose \
            data is missing is kept as it is and named on stderr.

            EXAMPLES
              moebench report results/20260101-120000-default
              moebench report results/20260101-120000-default --redraw --format md
            """)

    @Argument(help: "Results directory containing results.json.")
    var dir: String

    @Flag(name: .long, help: "Print a JSON object {\"index\": PATH, \"parts\": N, \"status\": S} instead of a sentence.")
    var json = false

    @Option(help: "Also print the suite's summary on stdout: text, md, csv or json (the sentence then goes to stderr).")
    var format: OutputFormat?

    @Flag(name: .long, help: "Draw the figures again from the stored data with this build's plotting code before rendering.")
    var redraw = false

    func run() throws {
        let url = URL(fileURLWithPath: dir)
        do {
            if redraw {
                let r = try FigureRedraw.redraw(directory: url)
                FileHandle.standardError.write(Data("redrew \(r.written.count) figure(s)\(r.skipped.isEmpty ? "" : "; kept: " + r.skipped.joined(separator: "; "))\n".utf8))
            }
            let out = try ReportRenderer.write(directory: url)
            let doc = try ResultsStore.loadDocument(directory: url)
            if let format {
                print(try SummaryTable.render(doc, format: SummaryTable.Format(rawValue: format.rawValue) ?? .text))
                FileHandle.standardError.write(Data("wrote \(out.path) (\(doc.parts.count) parts, suite \(doc.status))\n".utf8))
            } else if json {
                let obj: [String: Any] = ["index": out.path, "parts": doc.parts.count, "status": doc.status]
                let data = try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys, .withoutEscapingSlashes])
                print(String(decoding: data, as: UTF8.self))
            } else {
                print("wrote \(out.path) (\(doc.parts.count) parts, suite \(doc.status))")
            }
        } catch let e as ResultsError {
            throw RuntimeError(e.description)
        }
    }
}
