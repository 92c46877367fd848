// Ctrl-C (SIGINT) or SIGTERM during `moebench suite`. The first signal is handled on a dispatch queue, not in the
// signal handler: the running part's finished cells are already on disk (curves.jsonl per cell, the cost part after
// every model), so it marks results.json "interrupted" (parts still running too), re-renders index.html, stops the
// workers this process started and exits with 128 + the signal. A second signal while that runs exits at once
// (workers still stopped: StartedWorkers' handler is async-signal-safe). `moebench suite --resume DIR` continues.
import Cluster
import Dispatch
import Foundation

public enum SuiteInterruption {
    nonisolated(unsafe) static var sources: [DispatchSourceSignal] = []

    /// `hint` is printed after the interruption (how to resume).
    public static func install(store: ResultsStore, progress: Progress, hint: String) {
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler {
                StartedWorkers.installSignalHandlers()  // a second signal: stop workers, exit now
                progress.say("interrupted (signal \(sig)): keeping what finished")
                do {
                    try store.markInterrupted()
                    try ReportRenderer.write(directory: store.directory)
                } catch {
                    progress.say("could not record the interruption: \(error)")
                }
                StartedWorkers.stopAll()
                FileHandle.standardError.write(Data("moebench: interrupted; results so far in \(store.directory.path)\n\(hint)\n".utf8))
                exit(128 + sig)
            }
            source.resume()
            sources.append(source)
        }
    }

    /// Back to the plain handlers (stop workers, exit) once the suite has finished.
    public static func uninstall() {
        for s in sources { s.cancel() }
        sources = []
        StartedWorkers.installSignalHandlers()
    }
}
