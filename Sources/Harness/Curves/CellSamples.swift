import DiT
import Foundation

/// Writes one curves cell's samples next to `curves.jsonl`: `samples/<cell>.safetensors` (`samples` [n, 1, side,
/// side] F32 in the source's units, with the row as metadata) and `samples/<cell>.png`, the first 100 as a 10×10
/// grid, so a reader sees what an FD value means.
public enum CellSamples {
    public static func name(_ row: CurveRow) -> String {
        "\(row.integrator)-\(row.dlg ? "dlg" : "vanilla")-nfe\(row.budget)-seed\(row.seed)"
    }

    public static func write(row: CurveRow, samples: [Float], side: Int, directory: String) throws {
        let dir = URL(fileURLWithPath: directory).appendingPathComponent("samples")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let per = side * side, n = samples.count / per
        var w = SafetensorsWriter()
        w.metadata = ["integrator": row.integrator, "dlg": "\(row.dlg)", "budget": "\(row.budget)", "seed": "\(row.seed)",
                      "source": row.source, "units": "[0, 1] pixels"]
        w.add("samples", shape: [n, 1, side, side], floats: samples)
        let base = dir.appendingPathComponent(name(row))
        try w.write(to: base.path + ".safetensors")
        try ImageGrid(side: side, columns: 10).png(Array(samples.prefix(100 * per))).write(to: URL(fileURLWithPath: base.path + ".png"))
    }
}
