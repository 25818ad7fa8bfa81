// Binary readers: safetensors containers, model files and trainer checkpoints.
import CFG
import Engine
import Foundation
import GrammarVAE
import NN

enum SafeTensorsHarness {
  static let name = "safetensors"

  static func run(_ data: Data) throws(HarnessFailure) {
    let file: SafeTensorsFile
    do { file = try SafeTensorsFile(decoding: data) } catch {
      rejected(name, error)
      return
    }
    // Every tensor: its element count matches its shape, and the file holds its bytes.
    var total = 0
    for (key, e) in file.entries {
      let t = e.tensor
      guard t.shape.allSatisfy({ $0 >= 0 }), t.shape.reduce(1, *) == t.storage.count else {
        throw fail(name, "tensor \(key) has shape \(t.shape) and \(t.storage.count) values")
      }
      total += t.storage.count * e.dtype.byteSize
      var sum: Float = 0
      for v in t.storage { sum += v }
      _ = sum
    }
    guard total <= data.count else {
      throw fail(name, "tensors need \(total) bytes; the file has \(data.count)")
    }
    // Re-encoding (F32 and F16 are written; other types as F32) must decode to the same values.
    var copy = file
    for (key, e) in copy.entries where e.dtype != .F32 && e.dtype != .F16 {
      copy.entries[key] = SafeTensorsEntry(dtype: .F32, tensor: e.tensor)
    }
    let again: SafeTensorsFile
    do { again = try SafeTensorsFile(decoding: copy.encoded()) } catch {
      throw fail(name, "re-encoded file does not decode: \(error)")
    }
    guard again.metadata == file.metadata else {
      throw fail(name, "metadata changes in a round trip: \(file.metadata) → \(again.metadata)")
    }
    guard Set(again.entries.keys) == Set(file.entries.keys) else {
      throw fail(name, "tensor names change in a round trip")
    }
    for (key, e) in copy.entries {
      let a = e.tensor
      let b = again.entries[key]!.tensor
      guard a.shape == b.shape, a.storage.count == b.storage.count,
        zip(a.storage, b.storage).allSatisfy({ $0 == $1 || ($0.isNaN && $1.isNaN) })
      else { throw fail(name, "tensor \(key) changes in a round trip") }
    }
  }
}

enum ModelFileHarness {
  static let name = "model-file"

  static func run(_ data: Data) throws(HarnessFailure) {
    let path = ScratchDirectory.write(data, name: "model.safetensors")
    let model: VAEModel
    do { model = try VAEModel.load(path: path) } catch {
      rejected(name, error)
      return
    }
    try checkRoundTrip(model)
    // The codec the tool builds from the file: a string its grammar derives, within the
    // model's steps, encodes (or is refused with an error) without trapping.
    var rng = SeededRandom(seed: 1)
    let limit = min(model.configuration.steps, 60)
    if let d = try? model.grammar.randomDerivation(maxLength: limit, using: &rng),
      let s = try? model.grammar.derive(d)
    {
      let steps = model.configuration.steps
      do {
        let (sequence, _) = try model.codec.encode(s)
        guard sequence.count == steps else {
          throw fail(name, "codec gives \(sequence.count) steps, the configuration \(steps)")
        }
      } catch let e as HarnessFailure {
        throw e
      } catch {
        rejected(name, error)
      }
    }
  }

  /// Saving a loaded model and loading it again gives the same model.
  static func checkRoundTrip(_ model: VAEModel) throws(HarnessFailure) {
    let again: VAEModel
    do {
      let bytes = try model.container().encoded()
      again = try VAEModel.load(
        SafeTensorsFile(decoding: bytes), name: "round trip", expectedGrammar: model.grammar)
    } catch {
      throw fail(name, "a loaded model does not save and load again: \(error)")
    }
    guard again.configuration == model.configuration,
      again.grammarText == model.grammarText,
      again.trainingSummary == model.trainingSummary,
      productionHash(again.grammar) == productionHash(model.grammar)
    else { throw fail(name, "a loaded model changes when saved and loaded again") }
    for (a, b) in zip(model.network.allTensors, again.network.allTensors) {
      guard a.name == b.name, a.value == b.value else {
        throw fail(name, "tensor \(a.name) changes when saved and loaded again")
      }
    }
  }
}

enum CheckpointHarness {
  static let name = "checkpoint"

  /// What `gvae train --resume` does with `OUTPUT.checkpoint`: the trainer is built for the
  /// model the checkpoint holds (so every configuration is reachable), then resumes.
  static func run(_ data: Data) throws(HarnessFailure) {
    let output = "\(ScratchDirectory.path)/model.safetensors"
    let path = ScratchDirectory.write(data, name: "model.safetensors.checkpoint")
    let model: VAEModel
    do { model = try VAEModel.load(path: path) } catch {
      rejected(name, error)
      return
    }
    let settings = TrainingSettings(batchSize: 4, epochs: 1, plateauPatience: 1)
    let steps = model.configuration.steps
    let trainer = Trainer(
      model: model, settings: settings, train: EncodedDataset(steps: steps),
      validation: EncodedDataset(steps: steps), outputPath: output)
    guard trainer.checkpointPath == path else {
      throw fail(name, "checkpoint path \(trainer.checkpointPath), expected \(path)")
    }
    do { try trainer.resume() } catch {
      rejected(name, error)
      return
    }
    // A resumed trainer saves a checkpoint that resumes to the same state.
    let state = trainer.state
    do {
      try trainer.saveCheckpoint()
      try trainer.resume()
    } catch {
      throw fail(name, "a resumed trainer's own checkpoint does not resume: \(error)")
    }
    guard trainer.state.epoch == state.epoch, trainer.state.step == state.step,
      trainer.state.batchInEpoch == state.batchInEpoch,
      trainer.state.history.count == state.history.count
    else { throw fail(name, "trainer state changes in a checkpoint round trip") }
  }
}
