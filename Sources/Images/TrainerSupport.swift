// What every image trainer shares: the base class (the properties each has, the epoch loop,
// the summary's common fields, the model and checkpoint writes), the run's clock (a stop
// request or the time limit on any rank stops every rank at the same batch, checkpoints every
// epoch and every `checkpointMinutes`), and checkpoint files: the model's tensors, each
// optimiser's state under its prefix and the trainer state and settings as JSON metadata,
// written atomically and read back with every failure a clear error that names the file.
import Engine
import Foundation
import NN

/// The counters every trainer state has; `resume()` refuses ones no run can produce.
public protocol TrainerProgress: Codable, Sendable {
  associatedtype Record
  /// Finished epochs.
  var epoch: Int { get set }
  /// Finished batches of the current epoch.
  var batchInEpoch: Int { get set }
  var step: Int { get set }
  /// Seconds of training over all sessions.
  var elapsed: Double { get set }
  /// One record per finished epoch.
  var history: [Record] { get set }
}

extension TrainerProgress {
  /// Epoch records kept (the history's length).
  public var epochsRecorded: Int { history.count }
}

/// The settings the shared epoch loop reads.
public protocol TrainerSettings: Codable, Sendable {
  var epochs: Int { get }
  var maxMinutes: Double { get }
  var checkpointMinutes: Double { get }
}

/// The events the shared epoch loop sends (a trainer's enum cases are the witnesses).
public protocol TrainerEvent {
  associatedtype Record
  static func epoch(_ record: Record) -> Self
  static func checkpoint(path: String) -> Self
}

/// A model an image trainer writes: its weights, and its file with the training summary.
public protocol TrainableImageModel: AnyObject {
  associatedtype FileError: Error & CustomStringConvertible
  var parameters: [Parameter] { get }
  func container(trainingSummary: String) -> SafeTensorsFile
  func save(to path: String, trainingSummary: String) throws(FileError)
}

extension ImageVAE: TrainableImageModel {}
extension SSVAE: TrainableImageModel {}
extension ImageClassifier: TrainableImageModel {}
extension ImageGAN: TrainableImageModel {}
extension CycleGAN: TrainableImageModel {}

/// A trainer with checkpoints and `--resume`: what the `gvae image … train` commands drive alike.
public protocol ResumableTrainer: AnyObject {
  associatedtype State: TrainerProgress
  var state: State { get }
  /// MODEL.checkpoint.
  var checkpointPath: String { get }
  /// Asked after every batch; true saves a checkpoint and stops (`.interrupted`) on every rank.
  var shouldStop: () -> Bool { get set }
  /// Restores weights, optimiser state and trainer state from `checkpointPath`.
  func resume() throws(ImageTrainingError)
  func run() throws(ImageTrainingError) -> ImageTrainingOutcome
  /// Writes the model file (rank 0 only).
  func saveModel(to path: String) throws(ImageTrainingError)
}

/// One training session's clock: the time limit and the timed checkpoints. Decisions to stop
/// are taken by all ranks together, so every rank stops after the same batch.
struct TrainingClock {
  let start = Date()
  /// Seconds trained before this session (a resumed run's).
  let elapsedBefore: Double
  let maxMinutes: Double
  let checkpointMinutes: Double
  let cluster: Cluster
  private var lastCheckpoint = Date()

  init(elapsedBefore: Double, maxMinutes: Double, checkpointMinutes: Double, cluster: Cluster) {
    self.elapsedBefore = elapsedBefore
    self.maxMinutes = maxMinutes
    self.checkpointMinutes = checkpointMinutes
    self.cluster = cluster
  }

  /// Seconds of training over all sessions.
  var elapsed: Double { elapsedBefore + Date().timeIntervalSince(start) }

  private var overTime: Bool { maxMinutes > 0 && Date().timeIntervalSince(start) > maxMinutes * 60 }

  /// Each flag raised on any rank (every rank learns the same answer).
  private func onAnyRank(_ flags: [Bool]) -> [Bool] {
    var v = flags.map { $0 ? 1.0 : 0 }
    if cluster.size > 1 { cluster.allReduceSum(&v) }
    return v.map { $0 > 0 }
  }

  /// After each batch: a stop request or the time limit on any rank saves a checkpoint and
  /// returns the outcome to stop with; otherwise a checkpoint when `checkpointMinutes` have
  /// passed since the last, and nil (go on).
  mutating func afterBatch(
    stopRequested: Bool, saveCheckpoint: () throws(ImageTrainingError) -> Void
  ) throws(ImageTrainingError) -> ImageTrainingOutcome? {
    let flags = onAnyRank([stopRequested, overTime])
    if flags[0] {
      try saveCheckpoint()
      return .interrupted
    }
    if flags[1] {
      try saveCheckpoint()
      return .timeLimit
    }
    if Date().timeIntervalSince(lastCheckpoint) > checkpointMinutes * 60 {
      try saveCheckpoint()
      lastCheckpoint = Date()
    }
    return nil
  }

  /// After an epoch's bookkeeping (`completed` epochs of `epochs` done): its checkpoint, then
  /// the outcome to stop with, if any: the test hook's simulated kill after `stopAfterEpoch`
  /// epochs, or the time limit on any rank.
  mutating func afterEpoch(
    completed: Int, of epochs: Int, stopAfterEpoch: Int?, saveCheckpoint: () throws(ImageTrainingError) -> Void
  ) throws(ImageTrainingError) -> ImageTrainingOutcome? {
    try saveCheckpoint()
    lastCheckpoint = Date()
    if let k = stopAfterEpoch, completed >= k, completed < epochs { return .stoppedAfterEpoch(completed) }
    if onAnyRank([overTime])[0] { return completed < epochs ? .timeLimit : .finished }
    return nil
  }
}

/// Trainer checkpoint files: the weights (and buffers), each optimiser's state under its
/// prefix (F32, so a resume is exact), and the trainer state and settings as JSON metadata
/// beside the model's own metadata, in one safetensors file.
enum TrainerCheckpoint {
  static let stateKey = "gvae.trainer_state"
  static let settingsKey = "gvae.training_settings"

  /// JSON of a trainer state or settings; non-finite numbers (a best loss of +∞ before the
  /// first epoch ends) are written as the strings "inf", "-inf" and "nan".
  static func json<T: Encodable>(_ value: T) -> String {
    let e = JSONEncoder()
    e.outputFormatting = [.sortedKeys]
    e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
    return String(decoding: (try? e.encode(value)) ?? Data("{}".utf8), as: UTF8.self)
  }

  static func decode<T: Decodable>(_ type: T.Type, _ json: String?) -> T? {
    guard let json else { return nil }
    let d = JSONDecoder()
    d.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
    return try? d.decode(type, from: Data(json.utf8))
  }

  /// Writes `parameters` (the weights, and any buffers) and `extra` tensors by name, `metadata`
  /// (the model file's), the state, the settings and each optimiser's state under its prefix,
  /// atomically (temporary file and rename): a kill mid-write leaves the previous checkpoint.
  static func write<S: Encodable, T: Encodable>(
    _ parameters: [Parameter], extra: [String: Tensor] = [:], metadata: [String: String], state: S, settings: T,
    optimizers: [(prefix: String, optimizer: any Optimizer)], to path: String
  ) throws(ImageTrainingError) {
    var tensors = extra
    for p in parameters { tensors[p.name] = p.value }
    var file = SafeTensorsFile(tensors: tensors, metadata: metadata)
    file.metadata[stateKey] = json(state)
    file.metadata[settingsKey] = json(settings)
    for (prefix, optimizer) in optimizers {
      for (k, t) in optimizer.stateTensors() { file.entries[prefix + k] = SafeTensorsEntry(dtype: .F32, tensor: t) }
    }
    do { try file.write(to: URL(fileURLWithPath: path)) } catch { throw .checkpoint("cannot write \(path): \(error)") }
  }
}

/// A checkpoint being resumed. Every refusal names the file and says to start without
/// --resume (a trainer assigns the state it read last, after everything else was accepted).
struct ResumeCheckpoint {
  let path: String
  let file: SafeTensorsFile

  init(_ path: String) throws(ImageTrainingError) {
    self.path = path
    do { file = try SafeTensorsFile(contentsOf: URL(fileURLWithPath: path)) } catch {
      throw .checkpoint("\(path): \(error)")
    }
  }

  func refusal(_ message: String) -> ImageTrainingError {
    .checkpoint("\(path): \(message); start without --resume")
  }

  /// The metadata value under `key` decoded as `type` (nil when absent or malformed).
  func metadata<T: Decodable>(_ key: String, as type: T.Type) -> T? {
    TrainerCheckpoint.decode(type, file.metadata[key])
  }

  /// The training settings it was written with (nil when absent or malformed).
  func settings<T: Decodable>(_ type: T.Type) -> T? { metadata(TrainerCheckpoint.settingsKey, as: type) }

  /// The trainer state, refused unless its counters are ones a run can produce: at most
  /// 1,000,000 epochs, no more records than epochs, a batch within the epoch's `batches`, and
  /// whatever `valid` adds.
  func state<S: TrainerProgress>(
    _ type: S.Type, batches: (Int) -> Int, valid: (S) -> Bool = { _ in true }
  ) throws(ImageTrainingError) -> S {
    guard let s = metadata(TrainerCheckpoint.stateKey, as: type) else { throw refusal("trainer state is missing or malformed") }
    guard (0...1_000_000).contains(s.epoch), s.step >= 0, s.epochsRecorded <= s.epoch, s.elapsed.isFinite, s.elapsed >= 0,
      (0...batches(s.epoch)).contains(s.batchInEpoch), valid(s)
    else { throw refusal("impossible trainer state (epoch \(s.epoch), batch \(s.batchInEpoch), step \(s.step))") }
    return s
  }

  /// Loads `tensors` (exactly the file's tensors apart from the optimiser states and names
  /// under `otherPrefixes`: one missing, extra or of another shape is an error, and then none
  /// is assigned) and each optimiser's state from the tensors under its prefix.
  func restore(
    _ tensors: [Parameter], optimizers: [(prefix: String, optimizer: any Optimizer)], otherPrefixes: [String] = []
  ) throws(ImageTrainingError) {
    let prefixes = optimizers.map(\.prefix) + otherPrefixes
    var weights = file
    weights.entries = file.entries.filter { e in !prefixes.contains { e.key.hasPrefix($0) } }
    do {
      try weights.load(into: tensors)
      for (prefix, optimizer) in optimizers {
        var state: [String: Tensor] = [:]
        for (k, e) in file.entries where k.hasPrefix(prefix) { state[String(k.dropFirst(prefix.count))] = e.tensor }
        try optimizer.loadState(state)
      }
    } catch { throw .checkpoint("\(path): \(error)") }
  }
}

/// The base of every image trainer: what each holds alike (the hooks the commands and tests
/// set included), the epoch loop, the summary's common fields, and the model and checkpoint
/// writes. A trainer overrides the steps marked "each trainer's" and adds its `resume()`.
public class ImageTrainerBase<
  Model: TrainableImageModel, Settings: TrainerSettings, State: TrainerProgress, Event: TrainerEvent, Batch
> where Event.Record == State.Record {
  public let model: Model
  public let settings: Settings
  public var state: State
  public let outputPath: String
  public var checkpointPath: String { outputPath + ".checkpoint" }
  /// Asked after every batch; true saves a checkpoint and stops (`.interrupted`) on every rank.
  public var shouldStop: () -> Bool = { false }
  public var onEvent: (Event) -> Void = { _ in }
  /// Test hooks: stop after this many epochs (a simulated kill); a NaN loss at this step.
  public var stopAfterEpoch: Int? = nil
  public var injectNonFiniteAtStep: Int? = nil
  /// Extra fields of the training summary in the model file (data path, layout, …).
  public var summaryExtras: [String: String] = [:]
  /// Under mpirun the ranks train together; only rank 0 writes files.
  public let cluster = Cluster.world

  init(model: Model, settings: Settings, state: State, outputPath: String) {
    self.model = model
    self.settings = settings
    self.state = state
    self.outputPath = outputPath
  }

  // MARK: Each trainer's

  /// The batches of `epoch` in order; only the seed and the epoch decide them.
  public func batches(epoch: Int) -> [Batch] { fatalError("\(Self.self) must override batches(epoch:)") }

  /// One step on `rows`, the epoch's batch number `batch`, added to the epoch's sums in the
  /// state; returns the images it trained on (pairs, for a CycleGAN).
  func trainStep(_ rows: Batch, epoch: Int, batch: Int) throws(ImageTrainingError) -> Int {
    fatalError("\(Self.self) must override trainStep")
  }

  /// The progress event after batch `batch` of `batches` (`rate`: images a second this session).
  func batchEvent(epoch: Int, batch: Int, batches: Int, rate: Double) -> Event {
    fatalError("\(Self.self) must override batchEvent")
  }

  /// The finished epoch's record, from the state's sums.
  func epochRecord(epoch: Int, seconds: Double, rate: Double) -> State.Record {
    fatalError("\(Self.self) must override epochRecord")
  }

  /// After the record is kept and the epoch counted: clears the epoch's sums. A trainer that
  /// keeps its best model writes it here, before the epoch's end time is counted.
  func epochEnded(_ record: State.Record) throws(ImageTrainingError) { fatalError("\(Self.self) must override epochEnded") }

  /// True: the model file is the latest epoch's, written once the epoch's time is counted.
  var keepsLatestModel: Bool { true }

  /// The summary's fields that are the trainer's own.
  var summaryFields: [String: String] { [:] }

  /// The optimisers, each under its checkpoint prefix.
  var optimizers: [(prefix: String, optimizer: any Optimizer)] { fatalError("\(Self.self) must override optimizers") }

  /// The tensors a checkpoint holds and a resume restores.
  var checkpointTensors: [Parameter] { model.parameters }

  /// More tensors a checkpoint holds, by name (a resume reads them itself).
  var checkpointExtras: [String: Tensor] { [:] }

  // MARK: Shared

  public func run() throws(ImageTrainingError) -> ImageTrainingOutcome {
    var clock = TrainingClock(
      elapsedBefore: state.elapsed, maxMinutes: settings.maxMinutes, checkpointMinutes: settings.checkpointMinutes,
      cluster: cluster)
    while state.epoch < settings.epochs {
      let epoch = state.epoch
      let batches = batches(epoch: epoch)
      let epochStart = Date()
      var imagesThisSession = 0
      while state.batchInEpoch < batches.count {
        imagesThisSession += try trainStep(batches[state.batchInEpoch], epoch: epoch, batch: state.batchInEpoch)
        state.step += 1
        state.batchInEpoch += 1
        state.elapsed = clock.elapsed
        onEvent(
          batchEvent(
            epoch: epoch, batch: state.batchInEpoch, batches: batches.count,
            rate: Double(imagesThisSession) / max(Date().timeIntervalSince(epochStart), 1e-9)))
        if let stop = try clock.afterBatch(stopRequested: shouldStop(), saveCheckpoint: saveCheckpoint) { return stop }
      }
      let seconds = Date().timeIntervalSince(epochStart)
      let record = epochRecord(epoch: epoch, seconds: seconds, rate: Double(imagesThisSession) / max(seconds, 1e-9))
      state.history.append(record)
      state.epoch += 1
      state.batchInEpoch = 0
      try epochEnded(record)
      state.elapsed = clock.elapsed
      if keepsLatestModel { try saveModel(to: outputPath) }
      onEvent(.epoch(record))
      if let stop = try clock.afterEpoch(
        completed: state.epoch, of: settings.epochs, stopAfterEpoch: stopAfterEpoch, saveCheckpoint: saveCheckpoint)
      {
        return stop
      }
    }
    return .finished
  }

  /// The training summary in the model file: `summaryExtras`, the counters, the trainer's
  /// own fields and the settings.
  public func summary() -> String {
    var s = summaryExtras
    s["epochs_completed"] = String(state.epoch)
    s["steps"] = String(state.step)
    s["seconds"] = String(format: "%.0f", state.elapsed)
    s.merge(summaryFields) { $1 }
    s["settings"] = ImageVAE.json(settings)
    return ImageVAE.json(s)
  }

  /// Writes the model file (rank 0 only).
  public func saveModel(to path: String) throws(ImageTrainingError) {
    guard cluster.isRoot else { return }
    do { try model.save(to: path, trainingSummary: summary()) } catch { throw .checkpoint(error.description) }
  }

  /// The weights, the optimisers' states, any extra tensors and the trainer state in one
  /// file, written atomically, with the model file's metadata (rank 0 only).
  public func saveCheckpoint() throws(ImageTrainingError) {
    guard cluster.isRoot else { return }
    try TrainerCheckpoint.write(
      checkpointTensors, extra: checkpointExtras, metadata: model.container(trainingSummary: summary()).metadata,
      state: state, settings: settings, optimizers: optimizers, to: checkpointPath)
    onEvent(.checkpoint(path: checkpointPath))
  }

  /// The checkpoint's trainer state, refused unless this run's batches could produce it.
  func checkpointState(_ file: ResumeCheckpoint, valid: (State) -> Bool = { _ in true }) throws(ImageTrainingError) -> State {
    try file.state(State.self, batches: { batches(epoch: $0).count }, valid: valid)
  }

  /// Restores the checkpoint's tensors and optimiser states, then `s` (last: all was accepted).
  func restore(_ file: ResumeCheckpoint, state s: State, otherPrefixes: [String] = []) throws(ImageTrainingError) {
    try file.restore(checkpointTensors, optimizers: optimizers, otherPrefixes: otherPrefixes)
    state = s
  }
}
