// Training a CycleGAN: seeded unpaired batches, one Adam step of both generators then one
// of both discriminators (CycleGAN's order), image pools, per-epoch cycle errors on held-out
// images, atomic checkpoints (weights, both Adams, pools, RNG), exact resume, a NaN guard,
// data parallelism under mpirun; and the model file (gvae.kind = image-cyclegan).
import Engine
import Foundation
import NN

public struct CycleGANTrainingSettings: Codable, Sendable, Equatable, TrainerSettings {
  public var batchSize: Int = 1
  public var epochs: Int = 10
  /// Batches of an epoch × batch size; 0: max(|A|, |B|) (CycleGAN's epoch), the smaller
  /// domain drawn from fresh shuffles as it runs out.
  public var epochSize: Int = 0
  public var learningRate: Float = 2e-4
  public var beta1: Float = 0.5
  /// Weight of the cycle-consistency L1 terms (λ).
  public var lambdaCycle: Float = 10
  /// The identity terms' weight relative to λ (CycleGAN's 0.5).
  public var lambdaIdentity: Float = 0.5
  public var poolSize: Int = 50
  /// Epochs at the end over which the learning rate falls linearly to 0 (CycleGAN's
  /// n_epochs_decay); 0: constant.
  public var decayEpochs: Int = 0
  public var seed: UInt64 = 0
  public var maxMinutes: Double = 0
  public var checkpointMinutes: Double = 10

  public init() {}

  public func learningRate(epoch: Int) -> Float {
    guard decayEpochs > 0 else { return learningRate }
    let constant = max(epochs - decayEpochs, 0)
    guard epoch >= constant else { return learningRate }
    return learningRate * Float(1 - Double(epoch - constant + 1) / Double(decayEpochs + 1))
  }
}

/// One epoch (also a line of the JSON-lines log): mean losses per batch.
public struct CycleGANEpochRecord: Codable, Sendable, Equatable {
  public var epoch: Int
  public var step: Int
  public var generatorLoss: Double
  public var adversarialAB: Double
  public var adversarialBA: Double
  public var cycleA: Double
  public var cycleB: Double
  public var identity: Double
  public var discriminatorA: Double
  public var discriminatorB: Double
  /// Mean L1 per pixel in [0, 1] units on held-out images: a vs G(F(a)), b vs F(G(b)).
  public var heldOutCycleA: Double?
  public var heldOutCycleB: Double?
  public var learningRate: Float
  public var seconds: Double
  public var pairsPerSecond: Double
}

/// Sums over the batches of the current epoch.
public struct CycleGANEpochSums: Codable, Sendable, Equatable {
  public var batches = 0
  public var generator = 0.0
  public var adversarialAB = 0.0
  public var adversarialBA = 0.0
  public var cycleA = 0.0
  public var cycleB = 0.0
  public var identity = 0.0
  public var discriminatorA = 0.0
  public var discriminatorB = 0.0
}

public struct CycleGANTrainerState: Codable, Sendable, Equatable, TrainerProgress {
  public var epoch = 0
  public var batchInEpoch = 0
  public var step = 0
  /// The pools' draws.
  public var poolRandom: SeededRandom
  public var sums = CycleGANEpochSums()
  public var history: [CycleGANEpochRecord] = []
  public var elapsed = 0.0
}

public enum CycleGANTrainingEvent: TrainerEvent {
  case batch(epoch: Int, batch: Int, batches: Int, generatorLoss: Double, pairsPerSecond: Double)
  case epoch(CycleGANEpochRecord)
  case checkpoint(path: String)
}

/// Under mpirun every rank runs its contiguous rows of each batch (A and B) through the
/// generators and discriminators (instance norm is per image: nothing to synchronise), the
/// fakes are gathered so that every rank passes the whole batch through the same pools with
/// the same draws, gradients are summed in buckets, and only rank 0 writes.
public final class CycleGANTrainer:
  ImageTrainerBase<CycleGAN, CycleGANTrainingSettings, CycleGANTrainerState, CycleGANTrainingEvent, (a: [Int], b: [Int])>,
  ResumableTrainer
{
  public let trainA: ImageSet
  public let trainB: ImageSet
  /// Held-out images whose cycle errors are logged every epoch (may be empty).
  public let heldOutA: ImageSet?
  public let heldOutB: ImageSet?
  public var poolA: ImagePool
  public var poolB: ImagePool
  let generatorAdam: Adam
  let discriminatorAdam: Adam
  let generatorReducer: GradientReducer
  let discriminatorReducer: GradientReducer

  public init(
    model: CycleGAN, settings: CycleGANTrainingSettings, trainA: ImageSet, trainB: ImageSet,
    heldOutA: ImageSet? = nil, heldOutB: ImageSet? = nil, outputPath: String
  ) throws(ImageTrainingError) {
    let c = model.configuration
    for (name, set) in [("A", trainA), ("B", trainB), ("held-out A", heldOutA), ("held-out B", heldOutB)] {
      guard let set else { continue }
      guard set.height == c.height && set.width == c.width else {
        throw .data("domain \(name) images are \(set.height)×\(set.width), the model's \(c.height)×\(c.width)")
      }
    }
    guard trainA.count > 0 && trainB.count > 0 else { throw .data("no training images in domain \(trainA.count == 0 ? "A" : "B")") }
    self.trainA = trainA
    self.trainB = trainB
    self.heldOutA = heldOutA
    self.heldOutB = heldOutB
    let h = Adam.Hyperparameters(learningRate: settings.learningRate, beta1: settings.beta1, beta2: 0.999)
    generatorAdam = Adam(parameters: model.generatorParameters, hyperparameters: h)
    discriminatorAdam = Adam(parameters: model.discriminatorParameters, hyperparameters: h)
    poolA = ImagePool(capacity: settings.poolSize, imageSize: c.pixels)
    poolB = ImagePool(capacity: settings.poolSize, imageSize: c.pixels)
    generatorReducer = GradientReducer(parameters: model.generatorParameters, cluster: Cluster.world)
    discriminatorReducer = GradientReducer(parameters: model.discriminatorParameters, cluster: Cluster.world)
    super.init(
      model: model, settings: settings,
      state: CycleGANTrainerState(poolRandom: SeededRandom(seed: settings.seed &* 0x2545_F491_4F6C_DD1D &+ 0x9001)),
      outputPath: outputPath)
    if cluster.size > 1 {
      // Ranks split a batch's pairs: a batch of one pair (CycleGAN's own) cannot be split.
      guard settings.batchSize >= cluster.size else {
        throw .data(
          "data-parallel training splits each batch's image pairs over the ranks, and a batch of "
            + "\(settings.batchSize) cannot be split over \(cluster.size) ranks: give --batch-size \(cluster.size) or more "
            + "(CycleGAN's batch of 1 trains as one process)")
      }
      // Every rank starts from rank 0's weights.
      GradientReducer.broadcast(model.parameters, cluster: cluster)
    }
  }

  public var epochSize: Int { settings.epochSize > 0 ? settings.epochSize : max(trainA.count, trainB.count) }

  /// The (A, B) image indices of every batch of `epoch`: each domain's order is a chain of
  /// shuffles seeded by (seed, epoch, domain), so it depends on nothing else.
  public override func batches(epoch: Int) -> [(a: [Int], b: [Int])] {
    func order(_ n: Int, domain: UInt64) -> [Int] {
      var rng = SeededRandom(seed: settings.seed &+ 0x9E37_79B9_7F4A_7C15 &* UInt64(epoch + 1) ^ domain << 56)
      var out: [Int] = []
      while out.count < epochSize {
        var o = Array(0..<n)
        o.shuffle(using: &rng)
        out += o
      }
      return Array(out.prefix(epochSize))
    }
    let a = order(trainA.count, domain: 0xA)
    let b = order(trainB.count, domain: 0xB)
    let bs = max(1, settings.batchSize)
    return stride(from: 0, to: epochSize, by: bs).map {
      let r = $0..<min(epochSize, $0 + bs)
      return (Array(a[r]), Array(b[r]))
    }
  }

  /// Losses of one step (batch means, summed over the ranks), for the epoch sums.
  struct StepLosses {
    var total: Double
    var adversarialAB: Double
    var adversarialBA: Double
    var cycleA: Double
    var cycleB: Double
    var identity: Double
    var discriminatorA: Double
    var discriminatorB: Double
  }

  /// Backward of `loss` with the gradients of `reducer`'s parameters summed over the ranks,
  /// each bucket as soon as its gradients are complete (`loss` nil: a rank without rows in
  /// this batch, which still joins the sums).
  func backward(_ loss: Var?, on tape: Tape?, reducer: GradientReducer) {
    guard cluster.size > 1 else { return tape!.backward(loss!) }
    reducer.begin()
    if let loss, let tape {
      tape.onParameterGradient = reducer.gradientReady
      tape.backward(loss)
    }
    reducer.finish()
  }

  /// Rows `r` of [N, 1, H, W] images.
  static func rows(_ t: Tensor, _ r: Range<Int>) -> Tensor { t.sliced(axis: 0, range: r) }

  /// One step of both generators, then one of both discriminators on pooled fakes; throws
  /// on a non-finite loss or gradient before the update it would poison. `a` and `b` are the
  /// whole batch; under mpirun each rank runs its contiguous rows.
  func trainBatch(a: Tensor, b: Tensor) throws(ImageTrainingError) -> StepLosses {
    let s = settings
    let n = a.shape[0]
    let whole = cluster.size == 1
    let r = whole ? 0..<n : cluster.share(of: n)
    let batch: Int? = whole ? nil : n
    zeroGradients(model.parameters)
    let tape = Tape()
    tape.freeze(model.discriminatorParameters)  // constants for the generators' step: no weight gradients
    var g: CycleGANGeneratorLoss? = nil
    if !r.isEmpty {
      g = model.generatorLoss(
        a: whole ? a : Self.rows(a, r), b: whole ? b : Self.rows(b, r), lambda: s.lambdaCycle,
        identityWeight: s.lambdaIdentity, batch: batch, tape: tape)
    }
    backward(g?.total, on: tape, reducer: generatorReducer)
    // This rank's parts of the batch means; summed over the ranks, the whole batch's.
    var parts = [Double](repeating: 0, count: 7)
    if let g {
      parts = [
        Double(g.total.value.scalar), Double(g.adversarialAB), Double(g.adversarialBA), Double(g.cycleA),
        Double(g.cycleB), Double(g.identityA), Double(g.identityB),
      ]
    }
    if !whole { cluster.allReduceSum(&parts) }
    var total = parts[0]
    if injectNonFiniteAtStep == state.step { total = .nan }
    guard total.isFinite && globalGradientNorm(model.generatorParameters).isFinite else {
      throw .nonFinite(epoch: state.epoch, step: state.step, checkpoint: checkpointPath)
    }
    let lr = s.learningRate(epoch: state.epoch)
    generatorAdam.learningRate = lr
    generatorAdam.step()

    // The pools take the whole batch's fakes in order, on every rank alike.
    let shape = [n, 1, model.configuration.height, model.configuration.width]
    func allFakes(_ t: Tensor?) -> Tensor {
      if whole { return t! }
      return Tensor(shape: shape, storage: cluster.allGather(t?.storage ?? []))
    }
    var rng = state.poolRandom
    var pa = poolA
    var pb = poolB
    let fakeA = pa.query(allFakes(g?.fakeA), rng: &rng)
    let fakeB = pb.query(allFakes(g?.fakeB), rng: &rng)
    let dTape = Tape()
    var dLoss: Var? = nil
    var dParts = [0.0, 0.0]
    if !r.isEmpty {
      let (ra, rb) = whole ? (a, b) : (Self.rows(a, r), Self.rows(b, r))
      let (fa, fb) = whole ? (fakeA, fakeB) : (Self.rows(fakeA, r), Self.rows(fakeB, r))
      let lossA = model.discriminatorLoss(model.discriminatorA, real: ra, fake: fa, batch: batch, tape: dTape)
      let lossB = model.discriminatorLoss(model.discriminatorB, real: rb, fake: fb, batch: batch, tape: dTape)
      dLoss = lossA + lossB
      dParts = [Double(lossA.value.scalar), Double(lossB.value.scalar)]
    }
    backward(dLoss, on: dTape, reducer: discriminatorReducer)
    if !whole { cluster.allReduceSum(&dParts) }
    let (da, db) = (dParts[0], dParts[1])
    guard da.isFinite && db.isFinite && globalGradientNorm(model.discriminatorParameters).isFinite else {
      throw .nonFinite(epoch: state.epoch, step: state.step, checkpoint: checkpointPath)
    }
    discriminatorAdam.learningRate = lr
    discriminatorAdam.step()
    poolA = pa
    poolB = pb
    state.poolRandom = rng
    return StepLosses(
      total: total, adversarialAB: parts[1], adversarialBA: parts[2], cycleA: parts[3], cycleB: parts[4],
      identity: parts[5] + parts[6], discriminatorA: da, discriminatorB: db)
  }

  override func trainStep(_ rows: (a: [Int], b: [Int]), epoch: Int, batch: Int) throws(ImageTrainingError) -> Int {
    let l = try trainBatch(a: model.networkInput(trainA.batch(rows.a)), b: model.networkInput(trainB.batch(rows.b)))
    var sm = state.sums
    sm.batches += 1
    sm.generator += l.total
    sm.adversarialAB += l.adversarialAB
    sm.adversarialBA += l.adversarialBA
    sm.cycleA += l.cycleA
    sm.cycleB += l.cycleB
    sm.identity += l.identity
    sm.discriminatorA += l.discriminatorA
    sm.discriminatorB += l.discriminatorB
    state.sums = sm
    return rows.a.count
  }

  override func batchEvent(epoch: Int, batch: Int, batches: Int, rate: Double) -> CycleGANTrainingEvent {
    .batch(
      epoch: epoch, batch: batch, batches: batches, generatorLoss: state.sums.generator / Double(state.sums.batches),
      pairsPerSecond: rate)
  }

  override func epochRecord(epoch: Int, seconds: Double, rate: Double) -> CycleGANEpochRecord {
    let sm = state.sums
    let n = Double(max(sm.batches, 1))
    return CycleGANEpochRecord(
      epoch: epoch + 1, step: state.step, generatorLoss: sm.generator / n, adversarialAB: sm.adversarialAB / n,
      adversarialBA: sm.adversarialBA / n, cycleA: sm.cycleA / n, cycleB: sm.cycleB / n, identity: sm.identity / n,
      discriminatorA: sm.discriminatorA / n, discriminatorB: sm.discriminatorB / n,
      heldOutCycleA: heldOutA.flatMap { $0.count > 0 ? model.cycleError($0, from: .aToB) : nil },
      heldOutCycleB: heldOutB.flatMap { $0.count > 0 ? model.cycleError($0, from: .bToA) : nil },
      learningRate: settings.learningRate(epoch: epoch), seconds: seconds, pairsPerSecond: rate)
  }

  // A GAN has no validation loss to pick a best model by: the model is the latest epoch's.
  override func epochEnded(_ record: CycleGANEpochRecord) throws(ImageTrainingError) {
    state.sums = CycleGANEpochSums()
  }

  // MARK: Files

  override var summaryFields: [String: String] {
    var s: [String: String] = [:]
    s["training_images_a"] = String(trainA.count)
    s["training_images_b"] = String(trainB.count)
    if let last = state.history.last {
      if let v = last.heldOutCycleA { s["held_out_cycle_error_a"] = String(format: "%.4f", v) }
      if let v = last.heldOutCycleB { s["held_out_cycle_error_b"] = String(format: "%.4f", v) }
    }
    return s
  }

  static let generatorOptimizer = "optimizer.generators."
  static let discriminatorOptimizer = "optimizer.discriminators."
  override var optimizers: [(prefix: String, optimizer: any Optimizer)] {
    [(Self.generatorOptimizer, generatorAdam), (Self.discriminatorOptimizer, discriminatorAdam)]
  }

  /// A checkpoint also holds the pools, as two more tensors pool.a and pool.b.
  override var checkpointExtras: [String: Tensor] {
    var pools: [String: Tensor] = [:]
    for (name, pool) in [("pool.a", poolA), ("pool.b", poolB)] where !pool.images.isEmpty {
      pools[name] = Tensor(shape: [pool.images.count, pool.imageSize], storage: pool.images.flatMap { $0 })
    }
    return pools
  }

  /// Restores everything `saveCheckpoint` wrote; the configuration must be this run's and
  /// the counters ones a run can produce.
  public func resume() throws(ImageTrainingError) {
    let file = try ResumeCheckpoint(checkpointPath)
    guard file.file.metadata[CycleGAN.kindKey] == CycleGAN.kind else { throw file.refusal("not a CycleGAN checkpoint") }
    guard let c = file.metadata(CycleGAN.configurationKey, as: CycleGANConfiguration.self), c == model.configuration
    else { throw file.refusal("holds a model with a different configuration") }
    let s = try checkpointState(file)
    var pools: [ImagePool] = []
    for name in ["pool.a", "pool.b"] {
      var images: [[Float]] = []
      if let t = file.file.entries[name]?.tensor {
        let d = model.configuration.pixels
        guard t.shape.count == 2, t.shape[1] == d, t.shape[0] <= settings.poolSize else {
          throw file.refusal("\(name) has shape \(t.shape), expected at most \(settings.poolSize) images of \(d) pixels")
        }
        images = (0..<t.shape[0]).map { Array(t.storage[($0 * d)..<(($0 + 1) * d)]) }
      }
      pools.append(ImagePool(capacity: settings.poolSize, imageSize: model.configuration.pixels, images: images))
    }
    try restore(file, state: s, otherPrefixes: ["pool."])
    poolA = pools[0]
    poolB = pools[1]
  }
}

// MARK: - Model files

extension CycleGAN {
  public static let kindKey = ImageVAE.kindKey
  public static let kind = "image-cyclegan"
  public static let configurationKey = "gvae.image_configuration"
  public static let formatKey = ImageVAE.formatKey
  public static let format = "cyclegan-1"
  public static let trainingKey = ImageVAE.trainingKey

  public func container(trainingSummary: String = "{}") -> SafeTensorsFile {
    var tensors: [String: Tensor] = [:]
    for p in parameters { tensors[p.name] = p.value }
    return SafeTensorsFile(
      tensors: tensors,
      metadata: [
        Self.kindKey: Self.kind, Self.formatKey: Self.format,
        Self.configurationKey: ImageVAE.json(configuration), Self.trainingKey: trainingSummary,
      ])
  }

  /// Saves atomically (temporary file + rename).
  public func save(to path: String, trainingSummary: String = "{}") throws(CycleGANError) {
    do { try container(trainingSummary: trainingSummary).write(to: URL(fileURLWithPath: path)) } catch {
      throw .file("cannot write \(path): \(error)")
    }
  }

  public static func load(path: String) throws(CycleGANError) -> (model: CycleGAN, file: SafeTensorsFile) {
    let file: SafeTensorsFile
    do { file = try SafeTensorsFile(contentsOf: URL(fileURLWithPath: path)) } catch SafeTensorsError.io(_) {
      throw .file("cannot read model file \(path)")
    } catch {
      throw .file("\(path): not a valid model file (\(error))")
    }
    return (try load(file, name: path), file)
  }

  /// Reads a model from a file's container; any other kind of model file is a clear error.
  public static func load(_ file: SafeTensorsFile, name: String) throws(CycleGANError) -> CycleGAN {
    guard file.metadata[kindKey] == kind else {
      if file.metadata["gvae.grammar"] != nil || file.metadata["gvae.configuration"] != nil {
        throw .wrongKind("\(name) is a Grammar VAE model file, not a CycleGAN; train one with `gvae image cyclegan train`")
      }
      if let other = file.metadata[kindKey] {
        throw .wrongKind("\(name) is a model file of kind \(other), not a CycleGAN (\(kindKey)=\(kind))")
      }
      throw .wrongKind("\(name) is not a CycleGAN model file (no \(kindKey)=\(kind) metadata)")
    }
    guard file.metadata[formatKey] == format else {
      throw .file("\(name): CycleGAN format \(file.metadata[formatKey] ?? "(none)"), this gvae reads \(format)")
    }
    guard let js = file.metadata[configurationKey],
      let c = try? JSONDecoder().decode(CycleGANConfiguration.self, from: Data(js.utf8))
    else { throw .file("\(name): the CycleGAN configuration in the metadata is missing or malformed") }
    let model = try CycleGAN(configuration: c, seed: 0)
    do { try file.load(into: model.parameters) } catch {
      throw .file("\(name): \(error)")
    }
    return model
  }
}
