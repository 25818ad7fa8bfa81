import ArgumentParser
import CFG
import Engine
import Foundation
import GrammarVAE
import NN

#if canImport(Glibc)
  import Glibc
#endif

struct TrainCommand: ParsableCommand, RunsAsSeveralProcesses {
  static let configuration = CommandConfiguration(
    commandName: "train",
    abstract: "Train a Grammar VAE (or character VAE) on a file of strings.",
    discussion: """
      Reads one string per line (.smi/.txt, gzip accepted) or a CSV column (--column), parses \
      every line once (unparseable lines are reported with their line numbers and skipped), \
      and trains with Adam, reduce-on-plateau and a held-out validation split. Beside MODEL it \
      writes MODEL.checkpoint (every epoch, and every --checkpoint-minutes), MODEL.log.jsonl \
      and MODEL.loss.svg. Ctrl-C saves a checkpoint and exits; --resume continues exactly.
      """)

  @Option(help: "Grammar: zinc, equation, or a grammar file (default: from --preset).") var grammar:
    String?
  @Option(help: "Training data: text file (gzip accepted) or CSV with --column.") var data: String
  @Option(help: "CSV column name or index holding the strings.") var column: String?
  @Option(help: "Where to write the best model (safetensors).") var output: String
  @Option(help: "grammar (productions) or character.") var kind: ModelKind = .grammar
  @Option(
    help: "Architecture and training defaults: zinc, equation, tiny (the paper's decoder) or zinc-ar, equation-ar, tiny-ar (autoregressive) (default: from the grammar).")
  var preset: Preset?
  @Option(help: "Epochs.") var epochs: Int?
  @Option(name: .customLong("batch-size"), help: "Batch size.") var batchSize: Int?
  @Option(help: "Adam learning rate (with --resume: replaces the checkpoint's current rate, to lower it between sittings).") var lr: Float?
  @Option(help: "Epochs without validation improvement before the learning rate drops ×0.2.")
  var patience: Int?
  @Option(help: "Random seed (initialisation, shuffling, noise).") var seed: UInt64 = 0
  @Option(name: .customLong("validation-fraction"), help: "Fraction held out for validation.")
  var validationFraction: Double = 0.1
  @Option(
    name: .customLong("max-minutes"), help: "Stop (with a checkpoint) after this many minutes.")
  var maxMinutes: Double = 0
  @Option(name: .customLong("checkpoint-minutes"), help: "Checkpoint within epochs this often.")
  var checkpointMinutes: Double = 10
  @Flag(help: "Continue from MODEL.checkpoint.") var resume = false
  @Flag(
    name: .customLong("paper-loss"),
    help: "The paper's setting: ε std 0.01 and KL averaged over latent dimensions.") var paperLoss =
    false
  @Option(
    name: .customLong("kl-anneal"), help: "Epochs over which the KL weight rises from 0 to 1.")
  var klAnneal: Double = 0
  @Option(
    name: .customLong("kl-weight"), help: "Weight of the KL term after annealing (β; 1: the ELBO).")
  var klWeight: Float = 1
  @Option(
    name: .customLong("word-dropout"),
    help: "Autoregressive decoder: fraction of teacher-forced previous productions replaced by the start index in training (0: off).")
  var wordDropout: Float = 0
  @Option(
    name: .customLong("decoder-dropout"),
    help: "Dropout on the decoder GRU's outputs before the output layer, in training (0: off).")
  var decoderDropout: Float = 0
  @Option(
    name: .customLong("init-from"),
    help: "Start from this model file's weights (same configuration; fresh optimiser state).")
  var initFrom: String?
  @Option(help: "Clip the global gradient norm (0: off).") var clip: Float = 0
  @Flag(help: "Store the model with 16-bit floats.") var half = false
  @Flag(
    help:
      "Experimental: large matrix products in bfloat16 with float32 accumulation (AVX512-BF16 CPUs; one thread).")
  var bf16 = false
  @Option(name: .customLong("hold-out"), help: "Skip the first N lines (the test set; ZINC: 5000).")
  var holdOut: Int = 0
  @Option(
    name: .customLong("test-sample"),
    help: "Hold out N lines drawn at random (seed --test-seed) as a test set: never trained on, never used for validation.")
  var testSample: Int = 0
  @Option(name: .customLong("test-seed"), help: "Seed of the --test-sample draw.") var testSeed: UInt64 = 0
  @Option(name: .customLong("export-test"), help: "Write the --test-sample strings to this file and exit.")
  var exportTest: String?
  @Option(help: "Use at most N lines after the hold-out.") var limit: Int?
  @Option(help: "Sequence length (default: the preset's).") var steps: Int?
  @Option(help: "Latent size.") var latent: Int?
  @Option(name: .customLong("gru-hidden"), help: "GRU width.") var gruHidden: Int?
  @Option(name: .customLong("gru-layers"), help: "GRU layers.") var gruLayers: Int?
  @Option(name: .customLong("encoder-hidden"), help: "Encoder dense width.") var encoderHidden: Int?
  @Option(name: .customLong("decoder-hidden"), help: "Width of the decoder's view of z.")
  var decoderHidden: Int?
  @Option(help: "Filters of every encoder convolution.") var filters: Int?
  @Option(help: "Previous-choice embedding width (autoregressive presets).") var embedding: Int?
  @Option(name: .customLong("bucket-batches"), help: "Batches per length bucket (1: no bucketing).")
  var bucketBatches: Int = 32
  @Option(name: .customLong("micro-batch"), help: "Rows per forward pass (0: automatic).")
  var microBatch: Int = 0
  @Option(
    name: .customLong("blas-threads"),
    help: "OpenBLAS threads (default: OPENBLAS_NUM_THREADS, else one per CPU).") var blasThreads:
    Int?
  @Option(
    name: .customLong("monitor-count"),
    help: "Every --monitor-minutes, greedy reconstruction of this many validation strings (0: off).")
  var monitorCount: Int = 0
  @Option(name: .customLong("monitor-minutes"), help: "Minutes of training between monitor points.")
  var monitorMinutes: Double = 5
  @Option(
    name: .customLong("export-validation"),
    help: "Write the validation split's strings to this file and exit (to evaluate on them).")
  var exportValidation: String?

  func validate() throws {
    if let e = epochs, e < 1 { throw ValidationError("--epochs must be at least 1") }
    if let b = batchSize, b < 1 { throw ValidationError("--batch-size must be at least 1") }
    if let l = lr, !(l > 0 && l.isFinite) { throw ValidationError("--lr must be positive") }
    guard validationFraction >= 0 && validationFraction < 1 else {
      throw ValidationError("--validation-fraction must be in [0, 1)")
    }
    guard maxMinutes >= 0, checkpointMinutes > 0, klAnneal >= 0, clip >= 0, holdOut >= 0 else {
      throw ValidationError(
        "--max-minutes, --kl-anneal, --clip and --hold-out must be non-negative")
    }
    guard klWeight >= 0 && klWeight.isFinite else {
      throw ValidationError("--kl-weight must be a non-negative number")
    }
    guard wordDropout >= 0 && wordDropout < 1 else { throw ValidationError("--word-dropout must be in [0, 1)") }
    guard decoderDropout >= 0 && decoderDropout < 1 else {
      throw ValidationError("--decoder-dropout must be in [0, 1)")
    }
    if let patience, patience < 0 { throw ValidationError("--patience must be non-negative") }
    for (n, v) in [
      ("--steps", steps), ("--latent", latent), ("--gru-hidden", gruHidden),
      ("--gru-layers", gruLayers), ("--encoder-hidden", encoderHidden), ("--limit", limit),
      ("--decoder-hidden", decoderHidden), ("--filters", filters), ("--embedding", embedding),
    ] {
      if let v, v < 1 { throw ValidationError("\(n) must be at least 1") }
    }
    guard testSample >= 0 else { throw ValidationError("--test-sample must be non-negative") }
    guard monitorCount >= 0, monitorMinutes > 0 else {
      throw ValidationError("--monitor-count must be ≥ 0 and --monitor-minutes positive")
    }
    guard bucketBatches >= 1 else { throw ValidationError("--bucket-batches must be ≥ 1") }
    guard microBatch >= 0 else { throw ValidationError("--micro-batch must be ≥ 0 (0: automatic)") }
  }

  func run() throws {
    if let blasThreads { BLAS.setThreadCount(blasThreads) }
    let preset = self.preset ?? (grammar == "equation" ? .equation : .zinc)
    let grammarName = grammar ?? (preset.base == .equation ? "equation" : "zinc")
    let g: Grammar
    do { g = try Grammar.named(grammarName) } catch { throw fail(error.summary) }
    let grammarText: String
    if let shipped = ShippedGrammar.all.first(where: { $0.name == grammarName }) {
      grammarText = shipped.text
    } else {
      grammarText = (try? String(contentsOfFile: grammarName, encoding: .utf8)) ?? ""
    }

    // Data.
    var lines: [(line: Int, text: String)]
    do { lines = try TextData.lines(path: data, column: column) } catch {
      throw fail(error.description)
    }
    lines = Array(lines.dropFirst(holdOut))
    if testSample > 0 {
      // Drawn from the whole file, so a sorted file still gives a representative test set.
      var rng = SeededRandom(seed: testSeed ^ 0x7E57)
      var order = Array(lines.indices)
      order.shuffle(using: &rng)
      let test = Set(order.prefix(testSample))
      if let exportTest {
        let text = lines.indices.filter { test.contains($0) }.map { lines[$0].text + "\n" }.joined()
        do { try text.write(toFile: exportTest, atomically: true, encoding: .utf8) } catch {
          throw fail("cannot write \(exportTest): \(error.localizedDescription)")
        }
        printError("gvae: wrote \(test.count) test strings to \(exportTest)")
        return
      }
      lines = lines.indices.filter { !test.contains($0) }.map { lines[$0] }
    } else if exportTest != nil {
      throw fail("--export-test needs --test-sample N")
    }
    if let limit { lines = Array(lines.prefix(limit)) }
    guard !lines.isEmpty else { throw fail("\(data): no strings to train on") }

    // Configuration.
    // A shipped grammar named explicitly brings its own MAX_LEN (zinc-rr: 200).
    let shippedLength = kind == .grammar && grammar != nil ? ShippedGrammar.all.first { $0.name == grammarName }?.maxLength : nil
    let stepCount = steps ?? shippedLength ?? preset.defaultSteps(kind: kind) ?? g.maxLength
    var characters: [String] = []
    let strip = kind == .character && g.separator == " "
    if kind == .character {
      characters = SequenceCodec.characterVocabulary(lines.map(\.text), stripWhitespace: strip)
    }
    var config = preset.configuration(
      kind: kind, steps: stepCount,
      vocabularySize: kind == .grammar ? g.productions.count : characters.count)
    config.characters = characters
    config.stripWhitespace = strip
    if paperLoss {
      config.epsilonStd = 0.01
      config.klAveraged = true
    }
    if let latent {
      config.latentSize = latent
      if preset == .zinc || preset == .equation { config.decoderHidden = latent }
    }
    if let decoderHidden { config.decoderHidden = decoderHidden }
    if let filters { for i in config.convolutions.indices { config.convolutions[i].filters = filters } }
    if let embedding { config.embeddingSize = embedding }
    if let gruHidden { config.gruHidden = gruHidden }
    if let gruLayers { config.gruLayers = gruLayers }
    if let encoderHidden { config.encoderHidden = encoderHidden }
    let model: VAEModel
    do {
      model = try VAEModel(configuration: config, grammar: g, grammarText: grammarText, seed: seed)
    } catch { throw fail(error.description) }
    if let initFrom {
      let start: VAEModel
      do { start = try VAEModel.load(path: initFrom, expectedGrammar: g) } catch {
        throw fail(error.description)
      }
      guard start.configuration == config else {
        throw fail("--init-from \(initFrom): its configuration differs from this run's")
      }
      for (dst, src) in zip(model.network.allTensors, start.network.allTensors) { dst.value = src.value }
    }

    // Parse once.
    let t0 = Date()
    let encoded = EncodedDataset(lines: lines, codec: model.codec, threads: 2)
    for s in encoded.skipped.prefix(20) {
      printError("gvae: \(data):\(s.line): skipped: \(s.reason)")
    }
    if encoded.skipped.count > 20 {
      printError("gvae: … and \(encoded.skipped.count - 20) more skipped lines")
    }
    printError(
      "gvae: encoded \(encoded.count) strings (\(encoded.skipped.count) skipped) in "
        + String(format: "%.1f s", Date().timeIntervalSince(t0)))
    guard encoded.count > 0 else { throw fail("no line of \(data) could be encoded") }

    // Seeded split.
    var rng = SeededRandom(seed: seed ^ 0xDA7A)
    var order = Array(0..<encoded.count)
    order.shuffle(using: &rng)
    let nVal = Int(Double(encoded.count) * validationFraction)
    let validation = encoded.subset(Array(order.prefix(nVal)).sorted())
    let train = encoded.subset(Array(order.dropFirst(nVal)).sorted())

    if let exportValidation {
      let text = validation.strings.map { $0 + "\n" }.joined()
      do { try text.write(toFile: exportValidation, atomically: true, encoding: .utf8) } catch {
        throw fail("cannot write \(exportValidation): \(error.localizedDescription)")
      }
      printError("gvae: wrote \(validation.count) validation strings to \(exportValidation)")
      return
    }
    var settings = preset.training
    if let epochs { settings.epochs = epochs }
    if let batchSize { settings.batchSize = batchSize }
    if let lr { settings.learningRate = lr }
    if let patience { settings.plateauPatience = patience }
    settings.seed = seed
    settings.validationFraction = validationFraction
    settings.maxMinutes = maxMinutes
    settings.checkpointMinutes = checkpointMinutes
    settings.klAnnealEpochs = klAnneal
    settings.klWeight = klWeight
    settings.gradientClip = clip
    settings.bucketBatches = bucketBatches
    settings.microBatch = microBatch
    if wordDropout > 0 {
      guard model.configuration.decoder == .autoregressive else {
        throw fail("--word-dropout: the \(model.configuration.decoder) decoder is not fed its previous production")
      }
      settings.wordDropout = wordDropout
    }
    if decoderDropout > 0 { settings.decoderDropout = decoderDropout }

    let trainer = Trainer(
      model: model, settings: settings, train: train, validation: validation, outputPath: output)
    trainer.halfPrecisionOutput = half
    if bf16 {
      guard BLAS.bfloat16Available else { throw fail("--bf16 needs a CPU with AVX512-BF16") }
      BLAS.bfloat16Products = true
    }
    trainer.summaryExtras = [
      "data": data, "hold_out": String(holdOut), "test_sample": String(testSample),
      "test_seed": String(testSeed), "kind": kind.rawValue, "preset": preset.rawValue,
      "grammar": grammarName, "paper_loss": String(paperLoss),
    ]
    if let initFrom { trainer.summaryExtras["init_from"] = initFrom }
    if resume {
      guard FileManager.default.fileExists(atPath: trainer.checkpointPath) else {
        throw fail("--resume: no checkpoint at \(trainer.checkpointPath)")
      }
      do { try trainer.resume() } catch { throw fail("\(error)") }
      if let lr {
        printError("gvae: learning rate \(trainer.state.learningRate) -> \(lr) (--lr)")
        trainer.state.learningRate = lr
      }
      printError(
        "gvae: resumed at epoch \(trainer.state.epoch + 1), batch \(trainer.state.batchInEpoch), step \(trainer.state.step)"
      )
    }
    printError(
      "gvae: \(kind.rawValue) VAE, preset \(preset.rawValue): \(model.network.parameterCount) parameters, "
        + "\(train.count) training / \(validation.count) validation strings, batch \(settings.batchSize)"
    )

    let root = Cluster.world.isRoot
    if monitorCount > 0 && root {
      // A learning curve: greedy reconstruction of the posterior means of a fixed validation
      // subset, and the expected reconstruction of one stochastic encoding each (the
      // paper's protocol without its sampling noise), against training time and rows seen.
      let subset = Array(validation.strings.prefix(monitorCount))
      let canonical = subset.map { model.codec.canonical($0) }
      trainer.monitorMinutes = monitorMinutes
      trainer.monitor = {
        var rng = SeededRandom(seed: 0)
        guard let z = try? model.encode(subset, stochastic: false, rng: &rng) else { return }
        let out = model.decode(latents: z, strategy: .greedy, rng: &rng, lengthBudget: true)
        let hits = zip(out, canonical).filter { $0.0.string == $0.1 }.count
        var expected = 0.0
        if let zs = try? model.encode(subset, stochastic: true, rng: &rng),
          let lp = try? model.logLikelihoods(subset, latents: zs)
        {
          expected = lp.reduce(0) { $0 + exp($1) } / Double(max(subset.count, 1))
        }
        let s = trainer.state
        let line = String(
          format:
            "{\"event\":\"monitor\",\"seconds\":%.1f,\"rows_seen\":%d,\"step\":%d,\"epochs\":%.4f,"
            + "\"reconstruction_greedy\":%.4f,\"reconstruction_expected\":%.4f,\"strings\":%d,"
            + "\"train_kl\":%.4f,\"train_reconstruction\":%.4f}",
          s.elapsed, s.rowsSeen, s.step, Double(s.rowsSeen) / Double(max(train.count, 1)),
          Double(hits) / Double(max(subset.count, 1)), expected, subset.count,
          s.epochKL / Double(max(s.epochRows, 1)), s.epochReconstruction / Double(max(s.epochRows, 1)))
        TrainingLog.append(line, to: output + ".log.jsonl")
        printError(
          String(
            format: "gvae: monitor at %.0f s, %d rows: greedy reconstruction %.1f%% of %d, expected %.1f%%",
            s.elapsed, s.rowsSeen, 100 * Double(hits) / Double(max(subset.count, 1)), subset.count,
            100 * expected))
      }
    }

    trainer.shouldStop = stopOnInterrupt()

    let logPath = output + ".log.jsonl"
    let svgPath = output + ".loss.svg"
    let reporter = ProgressReporter()
    var batchLosses: [(Double, Double)] = []
    trainer.onEvent = { event in
      guard root else { return }
      switch event {
      case .batch(let epoch, let batch, let batches, let loss, let rate):
        reporter.update(
          epoch: epoch, epochs: settings.epochs, batch: batch, batches: batches, loss: loss,
          rate: rate)
        if batch % max(1, batches / 50) == 0 {
          batchLosses.append((Double(epoch) + Double(batch) / Double(batches), loss))
        }
      case .epoch(let r):
        reporter.finishLine()
        TrainingLog.append(TrainingLog.json(r), to: logPath)
        try? TrainingLog.svg(
          history: trainer.state.history, batchLosses: batchLosses, title: "gvae train: \(output)"
        )
        .write(toFile: svgPath, atomically: true, encoding: .utf8)
        printError(
          String(
            format:
              "epoch %d: loss %.4f (recon %.4f, KL %.4f), validation %@ (KL %@), lr %.2g, %.0f rows/s",
            r.epoch, r.trainLoss, r.trainReconstruction, r.trainKL,
            r.validationLoss.map { String(format: "%.4f", $0) } ?? "-",
            r.validationKL.map { String(format: "%.4f", $0) } ?? "-", r.learningRate,
            r.rowsPerSecond))
      case .checkpoint(let path):
        TrainingLog.append(
          "{\"event\":\"checkpoint\",\"path\":\(jsonString(path)),\"step\":\(trainer.state.step)}",
          to: logPath)
      case .bestModel(let path, let loss):
        TrainingLog.append(
          "{\"event\":\"best\",\"path\":\(jsonString(path)),\"loss\":\(loss)}", to: logPath)
      }
    }
    let outcome: TrainingOutcome
    do {
      outcome = try trainer.run()
    } catch {
      reporter.finishLine()
      TrainingLog.append("{\"event\":\"error\",\"message\":\(jsonString("\(error)"))}", to: logPath)
      throw fail("\(error)")
    }
    reporter.finishLine()
    if outcome == .interrupted || outcome == .timeLimit {
      // A sitting that stops mid-epoch: its latest weights, measured, beside the best model.
      let latest = output.hasSuffix(".safetensors")
        ? String(output.dropLast(".safetensors".count)) + ".latest.safetensors" : output + ".latest"
      trainer.monitor?()
      if let v = trainer.validationLoss(epoch: trainer.state.epoch, limit: 1000) {
        TrainingLog.append(
          String(
            format: "{\"event\":\"latest\",\"path\":%@,\"seconds\":%.1f,\"rows_seen\":%d,\"step\":%d,"
              + "\"validation_loss_1000\":%.4f,\"validation_reconstruction_1000\":%.4f,\"validation_kl_1000\":%.4f}",
            jsonString(latest), trainer.state.elapsed, trainer.state.rowsSeen, trainer.state.step,
            v.loss, v.reconstruction, v.kl), to: logPath)
        trainer.summaryExtras["latest_validation_loss_1000"] = String(format: "%.4f", v.loss)
      }
      model.trainingSummary = trainer.summaryForModel()
      if root {
        do { try model.save(to: latest, half: half) } catch { throw fail(error.description) }
      }
      printError("gvae: latest weights saved to \(latest)")
    }
    switch outcome {
    case .finished:
      printError(
        "gvae: finished \(trainer.state.epoch) epochs; best validation loss \(trainer.state.bestValidation); model: \(output)"
      )
    case .interrupted:
      printError(
        "gvae: interrupted; checkpoint saved to \(trainer.checkpointPath) (continue with --resume)")
    case .timeLimit:
      printError(
        "gvae: time limit reached; checkpoint saved to \(trainer.checkpointPath) (continue with --resume)"
      )
    case .stoppedAfterEpoch(let e):
      printError("gvae: stopped after epoch \(e)")
    }
    // Decided together: the ranks' file systems may differ.
    var unsaved = [!FileManager.default.fileExists(atPath: output) || trainer.state.history.isEmpty ? 1.0 : 0]
    Cluster.world.allReduceSum(&unsaved)
    if unsaved[0] > 0 {
      // No epoch has finished (no validated best model yet): save the current weights so
      // there is a model to use; a later epoch's best model replaces them.
      if let v = trainer.validationLoss(epoch: trainer.state.epoch, limit: 500) {
        printError(String(format: "gvae: validation loss on 500 held-out strings: %.4f (reconstruction %.4f)", v.loss, v.reconstruction))
        trainer.summaryExtras["partial_validation_loss_500"] = String(format: "%.4f", v.loss)
        model.trainingSummary = trainer.summaryForModel()
      }
      if root {
        do { try model.save(to: output, half: half) } catch { throw fail(error.description) }
      }
    }
  }
}

extension ModelKind: ExpressibleByArgument {}
extension Preset: ExpressibleByArgument {}

/// A progress bar on a terminal, periodic lines otherwise (stderr).
final class ProgressReporter {
  let isTTY = isatty(2) != 0
  var lastPrint = Date.distantPast
  var pending = false

  /// Batches done this session in the current epoch and when the first of them started.
  var sessionStart = Date()
  var sessionFirstBatch = -1

  func update(epoch: Int, epochs: Int, batch: Int, batches: Int, loss: Double, rate: Double) {
    let now = Date()
    if sessionFirstBatch < 0 || batch <= sessionFirstBatch {
      sessionFirstBatch = batch - 1
      sessionStart = now
    }
    let interval = isTTY ? 0.2 : 30
    guard now.timeIntervalSince(lastPrint) >= interval || batch == batches else { return }
    lastPrint = now
    let done = batch - sessionFirstBatch
    let perBatch = now.timeIntervalSince(sessionStart) / Double(max(done, 1))
    let left = Int(perBatch * Double(batches - batch))
    let eta =
      done < 2
      ? "?" : left >= 3600 ? "\(left / 3600)h\(left % 3600 / 60)m" : "\(left / 60)m\(left % 60)s"
    let frac = Double(batch) / Double(max(batches, 1))
    if isTTY {
      let width = 30
      let filled = Int(frac * Double(width))
      let bar =
        String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
      let line = String(
        format: "epoch %d/%d %@ %d/%d loss %.4f %.1f rows/s ETA %@", epoch + 1, epochs, bar, batch,
        batches, loss, rate, eta)
      FileHandle.standardError.write(Data(("\r" + line + "\u{1B}[K").utf8))
      pending = true
    } else {
      printError(
        String(
          format: "epoch %d/%d batch %d/%d loss %.4f %.1f rows/s ETA %@ (epoch)", epoch + 1, epochs,
          batch, batches, loss, rate, eta))
    }
  }

  func finishLine() {
    if pending {
      FileHandle.standardError.write(Data("\n".utf8))
      pending = false
    }
    sessionFirstBatch = -1
  }
}
