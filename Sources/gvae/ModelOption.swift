import ArgumentParser
import CFG
import Foundation
import GrammarVAE
import NN

/// `--model zinc|equation|zinc-char|equation-char|PATH`, shared by the model commands.
struct ModelOption: ParsableArguments {
  @Option(
    name: .long,
    help: "A shipped model (zinc, equation, zinc-char, equation-char) or a model file path.")
  var model: String = "zinc"

  @Option(
    name: .long,
    help: "Check the model against this grammar (shipped name or file); a mismatch is an error.")
  var grammar: String?

  static let shipped = ["zinc", "equation", "zinc-char", "equation-char"]

  /// Loads the model, naming every place it looked when a shipped model is missing.
  func load() throws -> VAEModel {
    let path: String
    if Self.shipped.contains(model) {
      let (found, looked) = ModelLocator.find(model + ".safetensors")
      guard let found else {
        throw fail(
          "shipped model '\(model)' not found; looked in: " + looked.joined(separator: ", ")
            + " (set GVAE_MODELS to the directory holding \(model).safetensors)")
      }
      path = found
    } else {
      guard FileManager.default.fileExists(atPath: model) else {
        throw fail(
          "no model file '\(model)' (expected a path or one of: \(Self.shipped.joined(separator: ", ")))"
        )
      }
      path = model
    }
    var expected: Grammar? = nil
    if let grammar {
      do {
        expected = try Grammar.named(grammar)
      } catch {
        throw fail(error.summary)
      }
    }
    do {
      return try VAEModel.load(path: path, expectedGrammar: expected)
    } catch {
      throw fail(error.description)
    }
  }
}

/// `--constraints` (and the older `--[no-]length-budget`), shared by the commands that decode.
struct LengthBudgetOption: ParsableArguments {
  @Option(
    help: ArgumentHelp(
      "What every output obeys: none (the grammar's stack mask only: may be unfinished), grammar"
        + " (also the length budget: always complete) or chemistry (also valid molecules: SMILES"
        + " grammars).",
      discussion: "Default: chemistry for SMILES-grammar models, else grammar."))
  var constraints: DecodingConstraints?
  @Flag(
    inversion: .prefixedNo,
    help: "Same as --constraints grammar (--no-length-budget: --constraints none).")
  var lengthBudget: Bool?

  /// The constraints for `model`, checked against it.
  func resolve(for model: VAEModel, fallback: DecodingConstraints? = nil) throws -> DecodingConstraints {
    try DecodingConstraints.resolve(
      constraints, lengthBudget: lengthBudget, model: model,
      fallback: fallback ?? DecodingConstraints.defaultFor(model))
  }
}

extension DecodingConstraints: ExpressibleByArgument {}

extension DecodingConstraints {
  static func resolve(
    _ explicit: DecodingConstraints?, lengthBudget: Bool?, model: VAEModel, fallback: DecodingConstraints
  ) throws -> DecodingConstraints {
    if let explicit, let lengthBudget, lengthBudget != (explicit != .none) {
      throw ValidationError(
        "--\(lengthBudget ? "" : "no-")length-budget contradicts --constraints \(explicit.rawValue)")
    }
    var c = explicit ?? lengthBudget.map { $0 ? .grammar : .none } ?? fallback
    if model.configuration.kind == .character {
      if explicit == .chemistry { throw ValidationError("--constraints chemistry needs a grammar model") }
      if explicit == nil { c = .none }
    } else if c == .chemistry && !model.grammar.isSMILES {
      guard explicit == nil else {
        throw ValidationError(
          "--constraints chemistry needs a SMILES grammar; this model's grammar is '\(model.grammar.name)'")
      }
      c = .grammar
    }
    return c
  }

  /// Arguments for `VAEModel.decode`.
  func decoding(for model: VAEModel) -> (lengthBudget: Bool, constraint: ConstraintSearch?) {
    switch self {
    case .none: return (false, nil)
    case .grammar: return (true, nil)
    case .chemistry:
      return (true, ConstraintSearch(grammar: model.grammar, constraint: SMILESConstraint(grammar: model.grammar)))
    }
  }
}

/// Finds shipped model files: only `$GVAE_MODELS` when it is set; otherwise a `Models/`
/// directory next to or above the executable, then the source tree (`#filePath`).
enum ModelLocator {
  static func directories() -> [String] {
    if let env = ProcessInfo.processInfo.environment["GVAE_MODELS"], !env.isEmpty {
      return [env]
    }
    var dirs: [String] = []
    let exe = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    var dir = exe.deletingLastPathComponent()
    for _ in 0..<6 {
      dirs.append(dir.appendingPathComponent("Models").path)
      let parent = dir.deletingLastPathComponent()
      if parent.path == dir.path { break }
      dir = parent
    }
    let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
      .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Models")
    dirs.append(source.path)
    var seen = Set<String>()
    return dirs.filter { seen.insert($0).inserted }
  }

  static func find(_ file: String) -> (String?, [String]) {
    let dirs = directories()
    for d in dirs {
      let p = (d as NSString).appendingPathComponent(file)
      if FileManager.default.fileExists(atPath: p) { return (p, dirs) }
    }
    return (nil, dirs)
  }
}

/// `--format text|json` for the model commands.
enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
  case text, json
}

/// A latent vector as text: shortest round-trip decimals separated by spaces.
func formatVector(_ v: [Float]) -> String { v.map { "\($0)" }.joined(separator: " ") }

func jsonVector(_ v: [Float]) -> String { "[" + v.map { "\($0)" }.joined(separator: ",") + "]" }

/// Prints one decoded output (item `number`, 1-based): the string, or an empty line plus a
/// stderr note when incomplete; JSON adds the input and `extra` fields.
func printDecoded(
  _ o: DecodedString, number: Int, input: String? = nil, format: OutputFormat, out: OutputBuffer,
  extra: String = ""
) {
  switch format {
  case .text:
    if let s = o.string {
      out.write(s + "\n")
    } else {
      out.write("\n")
      printError("output \(number): incomplete (symbols left to expand after the length limit)")
    }
  case .json:
    var fields: [String] = []
    if let input { fields.append("\"input\":" + jsonString(input)) }
    if !extra.isEmpty { fields.append(extra) }
    if let s = o.string {
      fields.append("\"output\":" + jsonString(s))
      fields.append("\"complete\":true")
    } else {
      fields.append("\"output\":null")
      fields.append("\"complete\":false")
    }
    out.write("{" + fields.joined(separator: ",") + "}\n")
  }
}

/// Prints decoded outputs numbered from 1.
func printDecoded(_ outputs: [DecodedString], format: OutputFormat, out: OutputBuffer) {
  for (i, o) in outputs.enumerated() { printDecoded(o, number: i + 1, format: format, out: out) }
}

/// `--temperature` / `--greedy` as a decoding strategy.
func strategy(greedy: Bool, temperature: Float) -> DecodingStrategy {
  greedy ? .greedy : .sample(temperature: temperature)
}
