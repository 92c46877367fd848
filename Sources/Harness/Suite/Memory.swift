import Foundation

/// Resident set size of this process now and at its peak, in MiB (Linux /proc/self/status VmRSS, VmHWM).
public enum Memory {
    public static func residentMiB() -> (now: Double, peak: Double) {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return (.nan, .nan) }
        func field(_ name: String) -> Double {
            for line in text.split(separator: "\n") where line.hasPrefix(name + ":") {
                let kb = line.split(separator: " ").compactMap { Double($0) }.first ?? .nan
                return kb / 1024
            }
            return .nan
        }
        return (field("VmRSS"), field("VmHWM"))
    }
}
