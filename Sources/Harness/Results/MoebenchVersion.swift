import Foundation

/// moebench's version, and the git commit of the checkout the running binary was built in (the binary lives in
/// `<checkout>/.build/<configuration>/`, so git is asked there, whatever the current directory).
public enum MoebenchVersion {
    public static let number = "0.5.0"

    /// Directory of the running executable.
    public static var executableDirectory: String? {
        Bundle.main.executableURL?.resolvingSymlinksInPath().deletingLastPathComponent().path
    }

    public static let commit: String? = MachineInfo.runGit(["rev-parse", "HEAD"], in: executableDirectory)

    public static var description: String {
        "moebench \(number)" + (commit.map { " (git \($0.prefix(12)))" } ?? "")
    }
}
