// swift-tools-version:6.0
import PackageDescription

let package = Package(
  name: "gvae",
  platforms: [.macOS(.v14)],
  products: [
    .executable(name: "gvae", targets: ["gvae"]),
    .executable(name: "gvae-bench", targets: ["gvae-bench"]),
    .executable(name: "gvae-fuzz", targets: ["gvae-fuzz"]),
    .library(name: "CFG", targets: ["CFG"]),
    .library(name: "Engine", targets: ["Engine"]),
    .library(name: "NN", targets: ["NN"]),
    .library(name: "GrammarVAE", targets: ["GrammarVAE"]),
    .library(name: "Chemistry", targets: ["Chemistry"]),
    .library(name: "Images", targets: ["Images"]),
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0")
  ],
  targets: [
    // Grammar engine: grammar files, tokenizer, parser, masks, stack decoder. No tensors.
    .target(name: "CFG"),

    // Tensor + reverse-mode autodiff; BLAS is loaded at run time behind one seam.
    .target(name: "Engine", dependencies: ["CKernels"], exclude: ["README.md"]),
    // Vectorised C kernels with runtime CPU dispatch (no build flags needed).
    .target(name: "CKernels"),

    // Layers, losses, optimisers, initialisers, safetensors checkpoints.
    .target(name: "NN", dependencies: ["Engine"], exclude: ["README.md"]),

    // Grammar VAE and character VAE: model, training, decoding, evaluation.
    .target(
      name: "GrammarVAE", dependencies: ["CFG", "Engine", "NN", "Chemistry"], exclude: ["README.md"]),

    // SMILES semantic checks (syntax, rings, valence, kekulization). No dependencies.
    .target(name: "Chemistry"),

    // Gaussian processes (exact and sparse FITC), expected improvement, batch Bayesian
    // optimisation, the expression objective and external scorers. Double precision.
    .target(name: "LatentOptimization", dependencies: ["Engine"], exclude: ["README.md"]),

    // zlib from the system (Debian zlib1g-dev): gzip inflate, PNG deflate.
    .systemLibrary(name: "CZlib", path: "Sources/CZlib", providers: [.apt(["zlib1g-dev"])]),

    // Image data (idx, .npy, CSV), binarisation, PNG grids, image VAEs (ELBO, IWAE).
    .target(name: "Images", dependencies: ["Engine", "NN", "CZlib"], exclude: ["README.md"]),

    // Executables: argument parsing and printing only.
    .executableTarget(
      name: "gvae",
      dependencies: [
        "CFG", "Engine", "NN", "GrammarVAE", "Chemistry", "LatentOptimization", "Images",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
      ]),
    .executableTarget(
      name: "gvae-bench",
      dependencies: ["CFG", "Engine", "NN", "GrammarVAE", "Chemistry"]),

    // Fuzz harnesses for the input readers (tools/fuzz.sh), shared with FuzzTests.
    .target(name: "FuzzHarnesses", dependencies: ["CFG", "Engine", "NN", "GrammarVAE", "Chemistry"]),
    // libFuzzer driver with -DFUZZING; otherwise replays files through a harness.
    .executableTarget(
      name: "gvae-fuzz",
      dependencies: ["CFG", "Engine", "NN", "GrammarVAE", "FuzzHarnesses"]),

    // Shared test helpers: gradient checker, golden files, seeded RNG.
    .target(name: "TestSupport", dependencies: ["Engine"]),

    .testTarget(
      name: "CFGTests", dependencies: ["CFG", "Engine", "TestSupport"],
      exclude: ["Golden"]),  // golden corpora, read through #filePath
    .testTarget(name: "EngineTests", dependencies: ["Engine", "TestSupport"]),
    .testTarget(name: "NNTests", dependencies: ["NN", "Engine", "TestSupport"], exclude: ["Fixtures"]),
    .testTarget(
      name: "GrammarVAETests", dependencies: ["GrammarVAE", "CFG", "NN", "Engine", "TestSupport"],
      exclude: ["Fixtures"]),
    .testTarget(name: "GVAEToolTests", dependencies: ["CFG"]),
    .testTarget(name: "ChemistryTests", dependencies: ["Chemistry"], exclude: ["Golden"]),
    .testTarget(name: "LatentOptimizationTests", dependencies: ["LatentOptimization", "Engine"]),
    .testTarget(name: "ImagesTests", dependencies: ["Images", "NN", "Engine", "TestSupport", "CZlib"]),
    // Replays Fuzz/regressions (read through #filePath).
    .testTarget(name: "FuzzTests", dependencies: ["FuzzHarnesses"]),
  ]
)
