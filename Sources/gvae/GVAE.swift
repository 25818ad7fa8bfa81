import ArgumentParser
import Engine
import Foundation

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

  /// Joins the MPI job first when an MPI launcher started this process (`mpirun -np N gvae
  /// train …`); commands that do not work as one job of several processes refuse to run.
  static func main() {
    do {
      try Cluster.start()
    } catch {
      FileHandle.standardError.write(Data("gvae: error: \(error)\n".utf8))
      Foundation.exit(1)
    }
    let cluster = Cluster.world
    do {
      var command = try parseAsRoot()
      if cluster.size > 1 && !(command is RunsAsSeveralProcesses) {
        throw ValidationError(
          "this command runs as one process; under mpirun with \(cluster.size) processes only "
            + "`train`, `encode`, `sample`, `evaluate`, `optimize` and `image vae|gan|ssvae|classifier|cyclegan train` "
            + "work (use -np 1, or run it without mpirun)")
      }
      try command.run()
    } catch {
      // No MPI_Finalize after a failure: the launcher stops the other ranks.
      exit(withError: error)
    }
    cluster.finish()
  }
}

/// Commands that work as one job of several MPI processes.
protocol RunsAsSeveralProcesses {}
