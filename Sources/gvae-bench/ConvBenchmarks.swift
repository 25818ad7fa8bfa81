// Timings of NN's 2-D convolutions at the DCGAN MNIST shapes (batch 64), forward and
// forward + backward, so a change to the convolution kernels is measured on its own.
//   gvae-bench conv [--runs N]
import Engine
import NN

func runConvBenchmarks(_ options: BenchOptions) {
  let runs = options.int("--runs") ?? 20
  // (name, transposed, input [B, C, H, W], weight shape, input needs a gradient)
  let cases: [(String, Bool, [Int], [Int], Bool)] = [
    ("conv-1x28-to-64x14", false, [64, 1, 28, 28], [64, 1, 4, 4], false),
    ("conv-64x14-to-128x7", false, [64, 64, 14, 14], [128, 64, 4, 4], true),
    ("convT-128x7-to-64x14", true, [64, 128, 7, 7], [128, 64, 4, 4], true),
    ("convT-64x14-to-1x28", true, [64, 64, 14, 14], [64, 1, 4, 4], true),
  ]
  for (name, transposed, xShape, wShape, inputGradient) in cases {
    var rng = SeededRandom(seed: 1)
    let x = Tensor(randomNormal: xShape, rng: &rng)
    let w = Parameter(name, Tensor(randomNormal: wShape, rng: &rng))
    let bias = Parameter(name + ".bias", Tensor(zeros: [transposed ? wShape[1] : wShape[0]]))
    func run(_ tape: Tape) -> Var {
      let xv = inputGradient ? tape.variable(x) : tape.constant(x)
      return transposed
        ? convTranspose2D(
          xv, weight: tape.parameter(w), bias: tape.parameter(bias), stride: (2, 2), padding: (1, 1))
        : conv2D(xv, weight: tape.parameter(w), bias: tape.parameter(bias), stride: (2, 2), padding: (1, 1))
    }
    var sink: Float = 0
    let forward = medianSeconds(runs: runs, warmup: 2) {
      sink += run(Tape(recording: false)).value.storage[0]
    }
    let both = medianSeconds(runs: runs, warmup: 2) {
      let tape = Tape()
      let y = run(tape)
      tape.backward(y, seed: Tensor(repeating: 1e-3, shape: y.shape))
      sink += w.gradient.storage[0]
    }
    report(name, medianSeconds: both, ["forward_seconds": forward, "backward_seconds": both - forward, "sink": sink.isFinite ? 0 : 1])
  }
}
