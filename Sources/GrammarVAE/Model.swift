// A trained model: configuration, grammar, network weights and training summary in one
// self-contained safetensors file.
import CFG
import Engine
import Foundation
import NN

/// A Grammar VAE or character VAE with the grammar it was trained with.
public final class VAEModel: @unchecked Sendable {
  public let configuration: ModelConfiguration
  public let grammar: Grammar
  /// The grammar file's text, stored in the model file.
  public let grammarText: String
  public let network: VAENetwork
  public let codec: SequenceCodec
  /// JSON summary of training (data, epochs, losses), when trained.
  public var trainingSummary: String

  public init(
    configuration: ModelConfiguration, grammar: Grammar, grammarText: String, seed: UInt64,
    trainingSummary: String = "{}"
  ) throws(ModelError) {
    try configuration.validate()
    if configuration.kind == .grammar && configuration.vocabularySize != grammar.productions.count {
      throw .invalidConfiguration(
        "vocabulary \(configuration.vocabularySize) differs from the grammar's \(grammar.productions.count) productions"
      )
    }
    if configuration.kind == .grammar && grammar.paddingProduction < 0 {
      throw .invalidConfiguration(
        "grammar \(grammar.name) has no empty production to pad derivations with "
          + "(add a rule such as Nothing -> None)")
    }
    self.configuration = configuration
    self.grammar = grammar
    self.grammarText = grammarText
    self.codec = SequenceCodec(configuration: configuration, grammar: grammar)
    self.network = VAENetwork(
      configuration: configuration, startIndex: Int(codec.paddingIndex), seed: seed)
    self.trainingSummary = trainingSummary
  }

  /// The loss mask for this model's kind.
  public var lossMask: LossMask {
    configuration.kind == .grammar ? LossMask(grammar: grammar) : .none
  }

  // MARK: Files

  /// "2": tensors in the PyTorch module's state_dict layout (Models/README.md). "1" was the
  /// first layout ([in, out] weights, `encoder.conv0.weight`, …); `upgrade` converts it.
  static let formatVersion = "2"

  /// Metadata and weights as a safetensors container, every tensor stored as `dtype`.
  public func container(dtype: SafeTensorsDType = .F32) -> SafeTensorsFile {
    var tensors: [String: Tensor] = [:]
    for p in network.allTensors { tensors[p.name] = p.value }
    let metadata = [
      "gvae.format": Self.formatVersion,
      "gvae.configuration": Self.json(configuration),
      "gvae.grammar": grammarText,
      "gvae.grammar_name": grammar.name,
      "gvae.grammar_max_length": String(grammar.maxLength),
      "gvae.grammar_separator": grammar.separator,
      "gvae.production_hash": productionHash(grammar),
      "gvae.training": trainingSummary,
    ]
    return SafeTensorsFile(tensors: tensors, dtype: dtype, metadata: metadata)
  }

  /// Saves the model (F32, or F16 with `half`), atomically.
  public func save(to path: String, half: Bool = false) throws(ModelError) {
    try Self.write(container(dtype: half ? .F16 : .F32), to: path)
  }

  /// Writes a model or checkpoint file atomically (NN's codec; errors as `ModelError`).
  static func write(_ file: SafeTensorsFile, to path: String) throws(ModelError) {
    do { try file.write(to: URL(fileURLWithPath: path)) } catch let SafeTensorsError.io(m) {
      throw .file(m)
    } catch {
      throw .file("cannot write \(path): \(error)")
    }
  }

  /// Reads a model or checkpoint file.
  static func read(path: String) throws(ModelError) -> SafeTensorsFile {
    do { return try SafeTensorsFile(contentsOf: URL(fileURLWithPath: path)) } catch SafeTensorsError
      .io
    {
      throw .file("cannot read model file \(path)")
    } catch {
      throw .file("\(path): not a valid model file (\(error))")
    }
  }

  /// Loads a model file.
  /// - Parameter expectedGrammar: when given, the model's production order must match it.
  public static func load(path: String, expectedGrammar: Grammar? = nil) throws(ModelError)
    -> VAEModel
  {
    let st = try read(path: path)
    return try load(st, name: path, expectedGrammar: expectedGrammar)
  }

  public static func load(_ st: SafeTensorsFile, name: String, expectedGrammar: Grammar? = nil)
    throws(ModelError) -> VAEModel
  {
    if st.metadata["gvae.format"] == "1" {
      throw .file(
        "\(name) is in gvae's first model layout (format 1); convert it once with "
          + "`gvae upgrade-model \(name) --output NEW.safetensors`")
    }
    let model = try untrained(st, name: name, format: formatVersion, expectedGrammar: expectedGrammar)
    try model.assign(st.entries, name: name)
    return model
  }

  /// A freshly initialised model with the configuration, grammar and summary of a file's
  /// metadata (of layout `format`), its weights not read yet.
  static func untrained(
    _ st: SafeTensorsFile, name: String, format: String, expectedGrammar: Grammar?
  ) throws(ModelError) -> VAEModel {
    func bad(_ m: String) -> ModelError { .file("\(name): not a valid model file (\(m))") }
    guard st.metadata["gvae.format"] == format else { throw bad("missing gvae metadata") }
    guard let cjson = st.metadata["gvae.configuration"],
      let config = decodeJSON(ModelConfiguration.self, cjson)
    else { throw bad("bad configuration") }
    guard let text = st.metadata["gvae.grammar"] else { throw bad("no grammar") }
    let gname = st.metadata["gvae.grammar_name"] ?? "<model grammar>"
    do { try config.validate() } catch { throw bad(error.description) }
    let maxLength = Int(st.metadata["gvae.grammar_max_length"] ?? "") ?? config.steps
    guard (1...ModelConfiguration.Limits.steps).contains(maxLength) else {
      throw bad("grammar maximum length \(maxLength) is outside 1...\(ModelConfiguration.Limits.steps)")
    }
    let separator = st.metadata["gvae.grammar_separator"] ?? ""
    let grammar: Grammar
    do {
      grammar = try Grammar(text: text, name: gname, maxLength: maxLength, separator: separator)
    } catch {
      throw bad("its grammar does not load: \(error.summary)")
    }
    let hash = productionHash(grammar)
    guard st.metadata["gvae.production_hash"] == hash else {
      throw bad("production hash does not match its grammar")
    }
    if let expected = expectedGrammar, productionHash(expected) != hash {
      throw .grammarMismatch(
        "\(name) was trained with grammar '\(gname)' (\(grammar.productions.count) productions, "
          + "hash \(hash)); grammar '\(expected.name)' has a different production order "
          + "(\(expected.productions.count) productions, hash \(productionHash(expected)))")
    }
    do {
      // The weights are read next: no orthonormalisation of weights that are replaced.
      return try Initializer.$weightsFollow.withValue(true) {
        try VAEModel(
          configuration: config, grammar: grammar, grammarText: text, seed: 0,
          trainingSummary: st.metadata["gvae.training"] ?? "{}")
      }
    } catch {
      throw bad("\(error)")
    }
  }

  /// Replaces every weight and buffer with the tensor of the same name, checked first.
  func assign(_ entries: [String: SafeTensorsEntry], name: String) throws(ModelError) {
    func bad(_ m: String) -> ModelError { .file("\(name): not a valid model file (\(m))") }
    for p in network.allTensors {
      guard let e = entries[p.name] else { throw bad("tensor '\(p.name)' is missing") }
      guard e.dtype.isFloatingPoint else {
        throw bad("tensor '\(p.name)' has dtype \(e.dtype.rawValue)")
      }
      let t = e.tensor
      guard t.shape == p.value.shape else {
        throw bad("tensor '\(p.name)' has shape \(t.shape), expected \(p.value.shape)")
      }
      guard t.storage.allSatisfy({ $0.isFinite }) else {
        throw bad("tensor '\(p.name)' is not finite")
      }
      p.value = t
    }
  }

  static func decodeJSON<T: Decodable>(_ type: T.Type, _ s: String) -> T? {
    let d = JSONDecoder()
    d.nonConformingFloatDecodingStrategy = .convertFromString(
      positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
    return try? d.decode(type, from: Data(s.utf8))
  }

  static func json<T: Encodable>(_ v: T) -> String {
    let e = JSONEncoder()
    e.outputFormatting = [.sortedKeys]
    e.nonConformingFloatEncodingStrategy = .convertToString(
      positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
    return (try? e.encode(v)).flatMap { String(data: $0, encoding: .utf8) } ?? "{}"
  }
}

/// FNV-1a 64-bit hash of the production list in order (`lhs -> rhs` lines): the model contract.
public func productionHash(_ g: Grammar) -> String {
  var h: UInt64 = 0xcbf2_9ce4_8422_2325
  for p in g.productions {
    for b in (p.description + "\n").utf8 {
      h ^= UInt64(b)
      h &*= 0x100_0000_01b3
    }
  }
  let s = String(h, radix: 16)
  return String(repeating: "0", count: 16 - s.count) + s
}
