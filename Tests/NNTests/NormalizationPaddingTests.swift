import Engine
import NN
import TestSupport
import Testing

@Suite struct InstanceNormAndReflectionPadTests {
  @Test func instanceNormGradientsThroughTheStatistics() {
    // Shifted and scaled inputs so that the mean and variance terms both matter.
    var x = randn([2, 3, 3, 4], seed: 21, std: 2)
    for i in 0..<x.count { x.storage[i] += Float(i % 5) - 1 }
    let r = checkGradients([x]) { v in instanceNorm(v[0]) }
    #expect(r.worstError < 1e-2, "\(r)")
    let affine = checkGradients([x, randn([3], seed: 22), randn([3], seed: 23)]) { v in
      instanceNorm(v[0], scale: v[1], offset: v[2])
    }
    #expect(affine.worstError < 1e-2, "\(affine)")
  }

  @Test func instanceNormNormalisesEachImageChannel() {
    let tape = Tape(recording: false)
    let x = randn([2, 3, 4, 5], seed: 24, std: 3)
    let y = instanceNorm(tape.constant(x)).value
    for p in 0..<6 {
      let v = Array(y.storage[(p * 20)..<((p + 1) * 20)])
      let mean = v.reduce(0, +) / 20
      let variance = v.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 20
      #expect(abs(mean) < 1e-5 && abs(variance - 1) < 1e-3, "plane \(p): mean \(mean) variance \(variance)")
    }
    // The layer: no parameters by default, weight and bias with affine.
    #expect(InstanceNorm(channels: 3, name: "n").parameters.isEmpty)
    #expect(InstanceNorm(channels: 3, affine: true, name: "n").parameters.map(\.name) == ["n.weight", "n.bias"])
  }

  @Test func reflectionPadValuesMatchPyTorch() {
    // ReflectionPad2d((1, 2)) rows, (2) columns of [[0 1 2], [3 4 5], [6 7 8]] per PyTorch.
    let tape = Tape(recording: false)
    let x = tape.constant(Tensor(shape: [1, 1, 3, 3], storage: (0..<9).map(Float.init)))
    let y = reflectionPad2D(x, padding: (1, 2)).value
    #expect(y.shape == [1, 1, 5, 7])
    #expect(
      y.storage == [
        5, 4, 3, 4, 5, 4, 3,
        2, 1, 0, 1, 2, 1, 0,
        5, 4, 3, 4, 5, 4, 3,
        8, 7, 6, 7, 8, 7, 6,
        5, 4, 3, 4, 5, 4, 3,
      ])
  }

  @Test func reflectionPadGradients() {
    // Every border pixel receives gradient from its mirror images: a dropped term fails.
    for padding in [(1, 1), (2, 1), (0, 3)] {
      let r = checkGradients([randn([2, 2, 3, 4], seed: 25)]) { v in reflectionPad2D(v[0], padding: padding) }
      #expect(r.worstError < 1e-2, "padding \(padding): \(r)")
    }
  }
}
