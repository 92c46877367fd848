import Formats
import Foundation

/// What `--ref` names: a statistics file (`mu`/`sigma`, pytorch-fid or ADM or `moebench fid --write-stats`), or an
/// image set (a PNG folder, or a `.npz` of `arr_0` images) whose statistics are computed (and cached).
///
/// KID needs reference features: they come from the file's `features`, else from its `arr_0` images (ADM's
/// reference batches hold 10,000 images next to `mu`/`sigma`, which ADM computed from the whole training set), else
/// it is an error naming the file.
public enum FIDReference {
    public static func load(_ path: String, builder: FIDStatisticsBuilder, needFeatures: Bool) throws -> FIDStatistics {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { throw FIDError(file: path, "no such file or directory") }
        if !isDir.boolValue, let archive = try? NumpyArchive(path: path), FIDStatistics.holdsStatistics(archive) {
            var stats = try FIDStatistics(archive: archive)
            if needFeatures && stats.features == nil {
                guard archive.contains("arr_0") else {
                    throw FIDError(file: path, "KID needs the reference's features, and this file holds only 'mu'/'sigma' (arrays: \(archive.names.joined(separator: ", "))); pass the reference images (a PNG folder or an arr_0 .npz), or statistics written by `moebench fid IMAGES --write-stats out.npz --kid`")
                }
                builder.log("fid: KID reference features from \(path)[arr_0] (FID uses its mu/sigma)")
                stats.features = try builder.statistics(of: ImageSet(path: path), keepFeatures: true).features
            }
            return stats
        }
        return try builder.statistics(of: ImageSet(path: path), keepFeatures: needFeatures)
    }
}
