import ArgumentParser
import GrammarVAE

struct UpgradeModelCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "upgrade-model",
    abstract: "Convert a model file of gvae's first layout (format 1) to today's (format 2).",
    discussion: """
      Format 2 stores the PyTorch module's state_dict layout (Models/README.md). The converted \
      model gives the same latent means and greedy decodings as the original.
      """)

  @Argument(help: "A format-1 model file.") var input: String
  @Option(help: "Where to write the converted model.") var output: String
  @Flag(help: "Store the model with 16-bit floats.") var half = false

  func run() throws {
    do {
      let model = try VAEModel.upgrade(path: input)
      try model.save(to: output, half: half)
      printError("gvae: wrote \(output) (format 2, \(model.network.parameterCount) parameters)")
    } catch { throw fail(error.description) }
  }
}
