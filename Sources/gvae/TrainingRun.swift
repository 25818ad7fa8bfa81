// What the training commands share: Ctrl-C that saves a checkpoint, --resume, and the end of
// a `gvae image … train` run (failures logged, the outcome reported, a model file left behind).
import Engine
import Foundation
import GrammarVAE
import Images
import NN

#if canImport(Glibc)
  import Glibc
#endif

/// Set by the SIGINT handler; the training loops check it between batches.
nonisolated(unsafe) var interruptRequested: sig_atomic_t = 0

/// Installs the SIGINT handler and returns the trainer's `shouldStop`: Ctrl-C stops training
/// after the current batch, with a checkpoint.
func stopOnInterrupt() -> () -> Bool {
  signal(SIGINT) { _ in interruptRequested = 1 }
  // A parent may have started us with SIGINT blocked (test runners do); Ctrl-C must work.
  var unblock = sigset_t()
  sigemptyset(&unblock)
  sigaddset(&unblock, SIGINT)
  sigprocmask(SIG_UNBLOCK, &unblock, nil)
  return { interruptRequested != 0 }
}

/// --resume: restores `trainer` from its checkpoint, which must exist, and says where it
/// continues.
func resumeTrainer<T: ResumableTrainer>(_ trainer: T) throws {
  guard FileManager.default.fileExists(atPath: trainer.checkpointPath) else {
    throw fail("--resume: no checkpoint at \(trainer.checkpointPath)")
  }
  do { try trainer.resume() } catch { throw fail("\(error)") }
  let s = trainer.state
  printError("gvae: resumed at epoch \(s.epoch + 1), batch \(s.batchInEpoch), step \(s.step)")
}

/// Runs `trainer` to its end as every `gvae image … train` does. A failure (a non-finite loss
/// included: the last good checkpoint stays) goes to OUTPUT.log.jsonl and ends the command
/// with its message; the outcome is reported (`finished` words a finished run; by default the
/// epochs, the time and the model); and the current weights are written to `output` when no
/// epoch has written a model yet, or always after a stop when `latestWeightsOnStop`.
@discardableResult
func runTrainer<T: ResumableTrainer>(
  _ trainer: T, output: String, finishLine: () -> Void, finished: (() -> String)? = nil,
  latestWeightsOnStop: Bool = false
) throws -> ImageTrainingOutcome {
  let outcome: ImageTrainingOutcome
  do { outcome = try trainer.run() } catch {
    finishLine()
    if Cluster.world.isRoot {
      TrainingLog.append("{\"event\":\"error\",\"message\":\(jsonString("\(error)"))}", to: output + ".log.jsonl")
    }
    throw fail("\(error)")
  }
  finishLine()
  switch outcome {
  case .finished:
    printError(
      finished?()
        ?? String(format: "gvae: finished %d epochs in %.0f s; model: %@", trainer.state.epoch, trainer.state.elapsed, output))
  case .interrupted:
    printError("gvae: interrupted; checkpoint saved to \(trainer.checkpointPath) (continue with --resume)")
  case .timeLimit:
    printError("gvae: time limit reached; checkpoint saved to \(trainer.checkpointPath) (continue with --resume)")
  case .stoppedAfterEpoch(let e):
    printError("gvae: stopped after epoch \(e)")
  }
  // Decided together: the ranks' file systems may differ.
  var unsaved = [FileManager.default.fileExists(atPath: output) ? 0.0 : 1]
  Cluster.world.allReduceSum(&unsaved)
  if unsaved[0] > 0 || (latestWeightsOnStop && (outcome == .interrupted || outcome == .timeLimit)) {
    do { try trainer.saveModel(to: output) } catch { throw fail("\(error)") }
  }
  return outcome
}
