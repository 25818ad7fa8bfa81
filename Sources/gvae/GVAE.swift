import ArgumentParser

@main
struct GVAE: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "gvae",
    abstract: "Grammar-constrained generative models: parse, encode, decode, sample, train.",
    subcommands: [
      ParseCommand.self, DeriveCommand.self, GrammarCommand.self, DatasetCommand.self,
      EncodeCommand.self, DecodeCommand.self, SampleCommand.self, ReconstructCommand.self,
      InterpolateCommand.self, TrainCommand.self, EvaluateCommand.self, UpgradeModelCommand.self,
      CheckCommand.self, OptimizeCommand.self, GPCommand.self, ImageCommand.self,
    ])
}
