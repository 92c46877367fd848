import CBLAS

/// OpenBLAS's thread count, for callers that parallelise themselves (the testbed splits batches over cores and
/// runs its small GEMMs single-threaded; multi-threaded OpenBLAS would spin on the other core, build notes P1).
public enum BLASThreads {
    public static func set(_ n: Int) { openblas_set_num_threads(Int32(max(1, n))) }
    public static var current: Int { Int(openblas_get_num_threads()) }
}
