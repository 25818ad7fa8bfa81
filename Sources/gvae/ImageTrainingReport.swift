// How every `gvae image … train` command reports a built trainer's run, written once: Ctrl-C,
// the progress line, OUTPUT.log.jsonl, one printed line per epoch, and the run's end. Each
// command keeps only its own messages (the epoch line) and events (a best model, its own progress).
import ArgumentParser
import Engine
import Foundation
import GrammarVAE
import Images
import NN

/// A trainer event as the shared wiring sees it (the enums differ in names and extra cases).
enum ReportedEvent<Record> {
  /// Progress within an epoch, as ProgressReporter shows it.
  case batch(epoch: Int, batch: Int, batches: Int, loss: Double, rate: Double)
  case epoch(Record)
  /// A checkpoint written (always to the trainer's `checkpointPath`).
  case checkpoint
  /// Left to the command's own `onEvent` (a GAN's two-loss progress, a new best model).
  case other
}

/// The trainer events a command can report through `trainAndReport`.
protocol ReportedTrainerEvent: TrainerEvent where Record: Encodable {
  var reported: ReportedEvent<Record> { get }
}

/// A progress line on stderr, ended before any other output.
protocol ProgressLine: AnyObject {
  func finishLine()
}

extension ProgressReporter: ProgressLine {}

/// Wires `trainer` (its resume and start message already done) and runs it to its end. On
/// rank 0 only: `onEvent` sees every event first; `.batch` events go to a ProgressReporter (a
/// command that shows batches itself, in `onEvent`, passes that `progress` line to be ended);
/// each epoch is logged, then `epochLine` (which may write files of its own first) is printed. `finished` and `latestWeightsOnStop` as for `runTrainer`.
func trainAndReport<T, Model, Settings, State, Event: ReportedTrainerEvent, Batch>(
  _ trainer: T, output: String, epochs: Int, progress: ProgressLine? = nil, onEvent: @escaping (Event) -> Void = { _ in },
  finished: (() -> String)? = nil, latestWeightsOnStop: Bool = false, epochLine: @escaping (Event.Record) -> String
) throws where T: ImageTrainerBase<Model, Settings, State, Event, Batch>, T: ResumableTrainer {
  trainer.shouldStop = stopOnInterrupt()
  let logPath = output + ".log.jsonl"
  let reporter = ProgressReporter()
  let line = progress ?? reporter
  let root = Cluster.world.isRoot
  trainer.onEvent = { event in
    guard root else { return }
    onEvent(event)
    switch event.reported {
    case .batch(let epoch, let batch, let batches, let loss, let rate):
      reporter.update(epoch: epoch, epochs: epochs, batch: batch, batches: batches, loss: loss, rate: rate)
    case .epoch(let r):
      line.finishLine()
      TrainingLog.append("{\"event\":\"epoch\"," + encodeJSON(r).dropFirst(), to: logPath)
      printError(epochLine(r))
    case .checkpoint:
      TrainingLog.append(
        "{\"event\":\"checkpoint\",\"path\":\(jsonString(trainer.checkpointPath)),\"step\":\(trainer.state.step)}",
        to: logPath)
    case .other:
      break
    }
  }
  try runTrainer(
    trainer, output: output, finishLine: line.finishLine, finished: finished, latestWeightsOnStop: latestWeightsOnStop)
}

/// The options of a run's length and resumption, alike in the image train commands
/// (each validates them with its own messages).
struct TrainingRunOptions: ParsableArguments {
  @Option(name: .customLong("max-minutes"), help: "Stop (with a checkpoint) after this many minutes.") var maxMinutes: Double = 0
  @Option(name: .customLong("checkpoint-minutes"), help: "Checkpoint within epochs this often.") var checkpointMinutes: Double = 10
  @Flag(help: "Continue from MODEL.checkpoint.") var resume = false
}
