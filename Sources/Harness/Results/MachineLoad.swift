// How busy the machine was around a part: the load average (/proc/loadavg), the CPU time of the whole machine and
// of steal (/proc/stat, first `cpu` line) and this process's own CPU time (/proc/self/stat), sampled before and
// after each part. From two snapshots:
//   otherCores     (Δ busy ticks of all CPUs − Δ steal − Δ ticks of this process) / (Δ wall seconds × CLK_TCK): the mean number
//                  of cores other processes kept busy while the part ran (cluster workers started by the suite are
//                  separate processes and count here);
//   stealFraction  Δ steal / Δ total ticks: time the hypervisor gave this VM's CPUs to someone else.
// The part is flagged busy when otherCores > 0.5 × cores, steal > 5%, or — for the first part only, before the suite
// itself has loaded the machine — the 1-minute load average > 0.5 × cores. On Linux only; elsewhere nothing is
// recorded.
import Foundation

public struct LoadSnapshot: Codable, Equatable, Sendable {
    /// 1-, 5- and 15-minute load averages (runnable + uninterruptible tasks, exponentially averaged).
    public var load1: Double
    public var load5: Double
    public var load15: Double
    /// Sum of all fields of the `cpu` line, its idle + iowait part and its steal part (USER_HZ ticks, all CPUs).
    public var totalTicks: UInt64
    public var idleTicks: UInt64
    public var stealTicks: UInt64
    /// utime + stime of this process (USER_HZ ticks).
    public var processTicks: UInt64
    /// Monotonic clock (seconds since boot), for the wall time between two snapshots.
    public var monotonicSeconds: Double

    /// Reads the current state; nil where /proc is missing or unparsable.
    public static func take() -> LoadSnapshot? {
        guard let loadavg = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8),
              let stat = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
              let selfStat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8) else { return nil }
        return parse(loadavg: loadavg, stat: stat, selfStat: selfStat,
                     monotonicSeconds: Double(DispatchTime.now().uptimeNanoseconds) / 1e9)
    }

    static func parse(loadavg: String, stat: String, selfStat: String, monotonicSeconds: Double) -> LoadSnapshot? {
        let l = loadavg.split(separator: " ").prefix(3).compactMap { Double($0) }
        guard l.count == 3, let cpu = stat.split(separator: "\n").first(where: { $0.hasPrefix("cpu ") }) else { return nil }
        // cpu  user nice system idle iowait irq softirq steal guest guest_nice (guest time is inside user/nice).
        let t = cpu.split(separator: " ").dropFirst().compactMap { UInt64($0) }
        guard t.count >= 8 else { return nil }
        // /proc/self/stat: "pid (comm) state …"; comm may hold spaces, so split after the last ')'. utime and stime
        // are fields 14 and 15, i.e. indices 11 and 12 counting from the state (field 3).
        guard let close = selfStat.lastIndex(of: ")") else { return nil }
        let f = selfStat[selfStat.index(after: close)...].split(separator: " ")
        guard f.count > 12, let ut = UInt64(f[11]), let st = UInt64(f[12]) else { return nil }
        let total = t.prefix(8).reduce(0, +)
        return LoadSnapshot(load1: l[0], load5: l[1], load15: l[2], totalTicks: total, idleTicks: t[3] + t[4], stealTicks: t[7],
                            processTicks: ut + st, monotonicSeconds: monotonicSeconds)
    }
}

/// The machine's load around one part and the verdict.
public struct PartLoad: Codable, Equatable, Sendable {
    public static let busyCoreFraction = 0.5
    public static let busySteal = 0.05

    public var before: LoadSnapshot
    public var after: LoadSnapshot
    /// Active cores the thresholds are relative to.
    public var cores: Int
    /// Mean cores busy with other processes during the part; fraction of CPU time stolen (nil when no ticks passed).
    public var otherCores: Double?
    public var stealFraction: Double?
    /// True when any threshold was crossed; `warnings` say which, in words.
    public var busy: Bool
    public var warnings: [String]

    /// `firstPart`: no part ran before, so the load average before it is other processes' alone.
    public init(before: LoadSnapshot, after: LoadSnapshot, cores: Int, firstPart: Bool,
                ticksPerSecond: Double = Double(sysconf(Int32(_SC_CLK_TCK)))) {
        self.before = before
        self.after = after
        self.cores = cores
        let dTotal = Double(after.totalTicks &- before.totalTicks), dIdle = Double(after.idleTicks &- before.idleTicks)
        let dSelf = Double(after.processTicks &- before.processTicks), dSteal = Double(after.stealTicks &- before.stealTicks)
        let wall = after.monotonicSeconds - before.monotonicSeconds
        otherCores = wall > 0 && dTotal > 0 ? max(0, dTotal - dIdle - dSteal - dSelf) / (wall * ticksPerSecond) : nil
        stealFraction = dTotal > 0 ? dSteal / dTotal : nil
        var w: [String] = []
        let limit = Self.busyCoreFraction * Double(cores)
        if let o = otherCores, o > limit {
            w.append(String(format: "Machine busy: other processes kept %.2f of %d cores busy on average during this part (threshold %.1f); timings are slower and noisier than on an idle machine.", o, cores, limit))
        }
        if let s = stealFraction, s > Self.busySteal {
            w.append(String(format: "Machine busy: %.1f%% of CPU time was stolen by the hypervisor during this part (threshold %.0f%%).", 100 * s, 100 * Self.busySteal))
        }
        if firstPart, before.load1 > limit {
            w.append(String(format: "Machine busy: the 1-minute load average was %.2f before the suite started, on %d cores (threshold %.1f).", before.load1, cores, limit))
        }
        warnings = w
        busy = !w.isEmpty
    }
}
