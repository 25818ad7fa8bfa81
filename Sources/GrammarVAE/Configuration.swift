// Model configuration: architecture sizes, loss settings and the paper's presets.

/// What a model reads and writes: production sequences (Grammar VAE) or characters
/// (the character VAE baseline of Gómez-Bombarelli et al., used by Kusner et al. 2017).
public enum ModelKind: String, Codable, Sendable, CaseIterable {
  case grammar
  case character
}

/// What the decoder's GRU reads at each step.
public enum DecoderKind: String, Codable, Sendable, CaseIterable {
  /// The paper's: the same projection of z at every step; logits never see earlier choices.
  case repeated
  /// Teacher-forced in training, fed its own choices in decoding: the projection of z beside
  /// an embedding of the previous production (or character); the padding index at step 0.
  case autoregressive
}

/// One encoder convolution: `filters` output channels, `kernel` width, valid padding, ReLU.
public struct ConvSpec: Codable, Sendable, Equatable {
  public var filters: Int
  public var kernel: Int
  public init(filters: Int, kernel: Int) {
    self.filters = filters
    self.kernel = kernel
  }
}

/// Every size of the network and the loss; a model file stores it as JSON.
///
/// ```
/// x [B, T, V] one-hot → Conv1D ×3 (ReLU, optional batch norm) → flatten → Dense(ReLU)
///   → μ, log σ² [B, Z]      z = μ + ε·σ,  ε ~ N(0, εstd²)
/// z → (batch norm) → Dense(ReLU) = d → GRU ×L → Dense → logits [B, T, V]
///   GRU input at step t: d (repeated), or [d, embedding(x_{t−1})] (autoregressive)
/// ```
public struct ModelConfiguration: Codable, Sendable, Equatable {
  public var kind: ModelKind
  /// Sequence length (grammar: MAX_LEN derivation steps; character: characters).
  public var steps: Int
  /// One-hot width: productions (grammar) or characters including padding.
  public var vocabularySize: Int
  public var convolutions: [ConvSpec]
  /// Batch norm after each convolution (the paper's expression networks).
  public var convolutionBatchNorm: Bool
  public var encoderHidden: Int
  public var latentSize: Int
  /// Batch norm on z before the decoder's dense layer (expression networks).
  public var latentBatchNorm: Bool
  /// Width of the decoder's first dense layer (the paper uses the latent size).
  public var decoderHidden: Int
  public var gruHidden: Int
  public var gruLayers: Int
  /// Standard deviation of ε in the reparameterisation: 1 for an ELBO, 0.01 in the paper's code.
  public var epsilonStd: Float
  /// KL over latent dimensions: summed (ELBO) or averaged (the paper's code).
  public var klAveraged: Bool
  /// Characters for the character VAE, index order; index 0 is padding. Empty for grammar models.
  public var characters: [String]
  /// Character models: strip whitespace from inputs (expression data is written with spaces).
  public var stripWhitespace: Bool
  /// The decoder's input (files without the key: `.repeated`).
  public var decoder: DecoderKind
  /// Width of the previous-choice embedding (autoregressive decoder; 0 otherwise).
  public var embeddingSize: Int

  public init(
    kind: ModelKind, steps: Int, vocabularySize: Int, convolutions: [ConvSpec],
    convolutionBatchNorm: Bool, encoderHidden: Int, latentSize: Int, latentBatchNorm: Bool,
    decoderHidden: Int, gruHidden: Int, gruLayers: Int, epsilonStd: Float = 1,
    klAveraged: Bool = false, characters: [String] = [], stripWhitespace: Bool = false,
    decoder: DecoderKind = .repeated, embeddingSize: Int = 0
  ) {
    self.kind = kind
    self.steps = steps
    self.vocabularySize = vocabularySize
    self.convolutions = convolutions
    self.convolutionBatchNorm = convolutionBatchNorm
    self.encoderHidden = encoderHidden
    self.latentSize = latentSize
    self.latentBatchNorm = latentBatchNorm
    self.decoderHidden = decoderHidden
    self.gruHidden = gruHidden
    self.gruLayers = gruLayers
    self.epsilonStd = epsilonStd
    self.klAveraged = klAveraged
    self.characters = characters
    self.stripWhitespace = stripWhitespace
    self.decoder = decoder
    self.embeddingSize = embeddingSize
  }

  enum CodingKeys: String, CodingKey {
    case kind, steps, vocabularySize, convolutions, convolutionBatchNorm, encoderHidden
    case latentSize, latentBatchNorm, decoderHidden, gruHidden, gruLayers, epsilonStd
    case klAveraged, characters, stripWhitespace, decoder, embeddingSize
  }

  public init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    kind = try c.decode(ModelKind.self, forKey: .kind)
    steps = try c.decode(Int.self, forKey: .steps)
    vocabularySize = try c.decode(Int.self, forKey: .vocabularySize)
    convolutions = try c.decode([ConvSpec].self, forKey: .convolutions)
    convolutionBatchNorm = try c.decode(Bool.self, forKey: .convolutionBatchNorm)
    encoderHidden = try c.decode(Int.self, forKey: .encoderHidden)
    latentSize = try c.decode(Int.self, forKey: .latentSize)
    latentBatchNorm = try c.decode(Bool.self, forKey: .latentBatchNorm)
    decoderHidden = try c.decode(Int.self, forKey: .decoderHidden)
    gruHidden = try c.decode(Int.self, forKey: .gruHidden)
    gruLayers = try c.decode(Int.self, forKey: .gruLayers)
    epsilonStd = try c.decode(Float.self, forKey: .epsilonStd)
    klAveraged = try c.decode(Bool.self, forKey: .klAveraged)
    characters = try c.decode([String].self, forKey: .characters)
    stripWhitespace = try c.decode(Bool.self, forKey: .stripWhitespace)
    self.decoder = try c.decodeIfPresent(DecoderKind.self, forKey: .decoder) ?? .repeated
    embeddingSize = try c.decodeIfPresent(Int.self, forKey: .embeddingSize) ?? 0
  }

  /// Width of the GRU's input at each step.
  public var gruInputSize: Int { decoderHidden + (decoder == .autoregressive ? embeddingSize : 0) }

  /// Length of the encoder's flattened convolution output.
  public var convolutionOutputLength: Int {
    var t = steps
    for c in convolutions { t = t - c.kernel + 1 }
    return t
  }

  /// Upper bounds on every size a model file can state: far above any real network, low enough
  /// that no product of them overflows and nothing is allocated for an absurd file.
  public enum Limits {
    public static let steps = 10_000
    public static let vocabulary = 100_000
    public static let convolutions = 16
    public static let width = 16_384
    public static let gruLayers = 16
    /// Parameters in all (4 bytes each): 1 G floats.
    public static let parameters = 1 << 30
  }

  /// Checks that the sizes make a network, before anything is allocated from them.
  public func validate() throws(ModelError) {
    func bad(_ m: String) -> ModelError { .invalidConfiguration(m) }
    guard (1...Limits.steps).contains(steps) else {
      throw bad("steps must be in 1...\(Limits.steps), got \(steps)")
    }
    guard (2...Limits.vocabulary).contains(vocabularySize) else {
      throw bad("vocabulary size must be in 2...\(Limits.vocabulary), got \(vocabularySize)")
    }
    guard (1...Limits.convolutions).contains(convolutions.count) else {
      throw bad("the encoder needs 1...\(Limits.convolutions) convolutions, got \(convolutions.count)")
    }
    for (i, c) in convolutions.enumerated() {
      guard (1...Limits.width).contains(c.filters), (1...steps).contains(c.kernel) else {
        throw bad(
          "convolution \(i): filters must be in 1...\(Limits.width) and kernel in 1...\(steps) "
            + "(the steps), got \(c.filters) filters, kernel \(c.kernel)")
      }
    }
    guard convolutionOutputLength > 0 else {
      throw bad("convolution kernels \(convolutions.map(\.kernel)) are too wide for \(steps) steps")
    }
    for (n, v) in [
      ("encoder hidden", encoderHidden), ("latent size", latentSize),
      ("decoder hidden", decoderHidden), ("GRU hidden", gruHidden),
    ] where !(1...Limits.width).contains(v) {
      throw bad("\(n) must be in 1...\(Limits.width), got \(v)")
    }
    guard (1...Limits.gruLayers).contains(gruLayers) else {
      throw bad("GRU layers must be in 1...\(Limits.gruLayers), got \(gruLayers)")
    }
    guard epsilonStd >= 0 && epsilonStd.isFinite else { throw bad("epsilon std must be ≥ 0") }
    if decoder == .autoregressive && !(1...Limits.width).contains(embeddingSize) {
      throw bad(
        "the autoregressive decoder needs an embedding size in 1...\(Limits.width), got \(embeddingSize)")
    }
    if decoder == .repeated && !(0...Limits.width).contains(embeddingSize) {
      throw bad("embedding size must be in 0...\(Limits.width), got \(embeddingSize)")
    }
    if kind == .character && characters.count != vocabularySize {
      throw bad(
        "character model has \(characters.count) characters for vocabulary \(vocabularySize)")
    }
    if kind == .character, let i = characters.firstIndex(where: { $0.count != 1 }) {
      throw bad("character \(i) is \(characters[i].debugDescription), not one character")
    }
    guard let n = parameterCount, n <= Limits.parameters else {
      throw bad("the network would have more than \(Limits.parameters) parameters")
    }
  }

  /// Parameters the network has (nil when the count overflows); batch-norm statistics included.
  public var parameterCount: Int? {
    var total = 0
    var ok = true
    func add(_ factors: Int...) {
      var p = 1
      for f in factors {
        let (r, o) = p.multipliedReportingOverflow(by: f)
        if o { ok = false; return }
        p = r
      }
      let (r, o) = total.addingReportingOverflow(p)
      if o { ok = false } else { total = r }
    }
    var channels = vocabularySize
    for c in convolutions {
      add(c.filters, channels, c.kernel)
      add(c.filters)
      if convolutionBatchNorm { add(4, c.filters) }
      channels = c.filters
    }
    add(channels, convolutionOutputLength, encoderHidden)
    add(encoderHidden)
    add(2, encoderHidden + 1, latentSize)
    if latentBatchNorm { add(4, latentSize) }
    add(latentSize + 1, decoderHidden)
    if decoder == .autoregressive { add(vocabularySize + 1, embeddingSize) }
    var input = gruInputSize
    for _ in 0..<max(0, gruLayers) {
      add(3, gruHidden, input + gruHidden + 2)
      input = gruHidden
    }
    add(gruHidden + 1, vocabularySize)
    return ok ? total : nil
  }
}

/// The paper's settings (REFERENCE.md §3) as named presets.
public enum Preset: String, Codable, Sendable, CaseIterable {
  case zinc
  case equation
  /// A very small network for tests and smoke runs.
  case tiny
  /// Autoregressive (teacher-forced) decoders: the previous choice and z at every step.
  case zincAR = "zinc-ar"
  case equationAR = "equation-ar"
  case tinyAR = "tiny-ar"

  /// The paper preset an autoregressive one derives from (itself for the paper's).
  public var base: Preset {
    switch self {
    case .zincAR: return .zinc
    case .equationAR: return .equation
    case .tinyAR: return .tiny
    default: return self
    }
  }

  /// Architecture for this preset; `steps` and `vocabularySize` come from the data.
  public func configuration(kind: ModelKind, steps: Int, vocabularySize: Int) -> ModelConfiguration
  {
    var c = base.paperConfiguration(kind: kind, steps: steps, vocabularySize: vocabularySize)
    switch self {
    case .zincAR:
      // Sizes chosen from the learning curves in Models/README.md: one wide GRU layer is a
      // third of the paper's recurrent cost, and wider convolutions give z more to carry.
      c.convolutions = [.init(filters: 32, kernel: 9), .init(filters: 32, kernel: 9), .init(filters: 32, kernel: 11)]
      c.decoderHidden = 128
      c.gruHidden = 512
      c.gruLayers = 1
      c.decoder = .autoregressive
      c.embeddingSize = 32
    case .equationAR:
      c.decoder = .autoregressive
      c.embeddingSize = 16
    case .tinyAR:
      c.decoder = .autoregressive
      c.embeddingSize = 6
    default: break
    }
    return c
  }

  func paperConfiguration(kind: ModelKind, steps: Int, vocabularySize: Int) -> ModelConfiguration {
    switch self {
    case .zinc:
      return ModelConfiguration(
        kind: kind, steps: steps, vocabularySize: vocabularySize,
        convolutions: [
          .init(filters: 9, kernel: 9), .init(filters: 9, kernel: 9),
          .init(filters: 10, kernel: 11),
        ],
        convolutionBatchNorm: false, encoderHidden: 435, latentSize: 56, latentBatchNorm: false,
        decoderHidden: 56, gruHidden: 501, gruLayers: 3)
    case .equation:
      return ModelConfiguration(
        kind: kind, steps: steps, vocabularySize: vocabularySize,
        convolutions: [
          .init(filters: 2, kernel: 2), .init(filters: 3, kernel: 3),
          .init(filters: 4, kernel: 4),
        ],
        convolutionBatchNorm: true, encoderHidden: 100, latentSize: 25, latentBatchNorm: true,
        decoderHidden: 25, gruHidden: 100, gruLayers: 3)
    case .tiny:
      return ModelConfiguration(
        kind: kind, steps: steps, vocabularySize: vocabularySize,
        convolutions: [.init(filters: 4, kernel: 2), .init(filters: 4, kernel: 2)],
        convolutionBatchNorm: false, encoderHidden: 32, latentSize: 8, latentBatchNorm: false,
        decoderHidden: 16, gruHidden: 32, gruLayers: 1)
    default:
      return base.paperConfiguration(kind: kind, steps: steps, vocabularySize: vocabularySize)
    }
  }

  /// The paper's sequence length for each kind (grammar MAX_LEN or character length).
  public func defaultSteps(kind: ModelKind) -> Int? {
    switch (base, kind) {
    case (.zinc, .grammar): return 277
    case (.zinc, .character): return 120
    case (.equation, .grammar): return 15
    case (.equation, .character): return 19
    default: return nil
    }
  }

  /// The paper's training settings for this preset.
  public var training: TrainingSettings {
    switch base {
    case .zinc:
      return TrainingSettings(batchSize: 500, epochs: 100, plateauPatience: 3)
    case .equation:
      return TrainingSettings(batchSize: 600, epochs: 50, plateauPatience: 1)
    default:
      return TrainingSettings(batchSize: 8, epochs: 20, plateauPatience: 5)
    }
  }
}

/// Errors about models: configuration, files, shapes and grammars.
public enum ModelError: Error, Equatable, Sendable, CustomStringConvertible {
  case invalidConfiguration(String)
  case file(String)
  case grammarMismatch(String)
  case input(String)

  public var description: String {
    switch self {
    case .invalidConfiguration(let m): return "invalid model configuration: \(m)"
    case .file(let m): return m
    case .grammarMismatch(let m): return m
    case .input(let m): return m
    }
  }
}
