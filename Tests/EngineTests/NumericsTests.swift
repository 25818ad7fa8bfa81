import Engine
import Foundation
import Testing

@Suite struct NumericsTests {
  func run(_ kernel: (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void, _ x: [Float])
    -> [Float]
  {
    var y = [Float](repeating: 0, count: x.count)
    x.withUnsafeBufferPointer { px in
      y.withUnsafeMutableBufferPointer { py in kernel(px.baseAddress!, py.baseAddress!, x.count) }
    }
    return y
  }

  @Test func vectorKernelsAreAccurate() {
    // Odd count so the vector remainder loop is exercised too.
    let grid = (0..<2001).map { Float(-20 + 40 * Double($0) / 2000) + 1e-3 }
    let positive = (0..<1001).map { Float(pow(1.1, Double($0 - 500))) } + [1e-40, 3e-39, 1e30]
    func worst(_ xs: [Float], _ ys: [Float], _ ref: (Double) -> Double) -> Double {
      zip(xs, ys).map { x, y in
        let r = ref(Double(x))
        return Swift.abs(Double(y) - r) / Swift.max(Swift.abs(r), 1e-30)
      }.max()!
    }
    let e = worst(grid, run({ Kernels.exp($0, $1, count: $2) }, grid), Foundation.exp)
    let l = worst(positive, run({ Kernels.log($0, $1, count: $2) }, positive), Foundation.log)
    let t = worst(grid, run({ Kernels.tanh($0, $1, count: $2) }, grid), Foundation.tanh)
    let s = worst(grid, run({ Kernels.sigmoid($0, $1, count: $2) }, grid)) {
      1 / (1 + Foundation.exp(-$0))
    }
    #expect(e < 2e-6, "exp \(e)")
    #expect(l < 2e-6, "log \(l)")
    #expect(t < 2e-6, "tanh \(t)")
    #expect(s < 2e-6, "sigmoid \(s)")
  }

  @Test func vectorKernelsSpecialValues() {
    let x: [Float] = [0, .infinity, -.infinity, -100, 100]
    let e = run({ Kernels.exp($0, $1, count: $2) }, x)
    #expect(e == [1, .infinity, 0, 0, .infinity])
    let l = run({ Kernels.log($0, $1, count: $2) }, [0, 1, .infinity])
    #expect(l == [-.infinity, 0, .infinity])
    #expect(run({ Kernels.log($0, $1, count: $2) }, [-1])[0].isNaN)
    #expect(run({ Kernels.tanh($0, $1, count: $2) }, [.infinity, -.infinity, 0]) == [1, -1, 0])
    #expect(
      run({ Kernels.sigmoid($0, $1, count: $2) }, [.infinity, -.infinity, 0]) == [1, 0, 0.5])
    #expect(run({ Kernels.exp($0, $1, count: $2) }, [.nan])[0].isNaN)
  }

  @Test func maskedSoftmaxGivesExactlyZero() {
    let tape = Tape()
    var rng = SeededRandom(seed: 5)
    let x = tape.variable(Tensor(randomNormal: [3, 4], std: 3, rng: &rng))
    // Row 0: two allowed; row 1: all masked; row 2: one allowed.
    let mask = Tensor(shape: [3, 4], storage: [1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1])
    let p = softmax(x, mask: mask).value
    let lp = logSoftmax(x, mask: mask).value
    for i in 0..<12 where mask.storage[i] == 0 {
      #expect(p.storage[i] == 0)
      #expect(lp.storage[i] == -.infinity)
    }
    #expect(Swift.abs(p.storage[0] + p.storage[2] - 1) < 1e-6)
    #expect(p.storage[11] == 1)
    #expect(lp.storage[11] == 0)
    #expect(!p.storage.contains { $0.isNaN })
    #expect(!lp.storage.contains { $0.isNaN })
    // Gradients: zero at masked positions, finite everywhere, even for the empty row.
    let tape2 = Tape()
    let x2 = tape2.variable(x.value)
    let y = logSoftmax(x2, mask: mask)
    tape2.backward(y, seed: Tensor(repeating: 1, shape: [3, 4]))
    let g = tape2.gradient(of: x2)!
    for i in 0..<12 where mask.storage[i] == 0 { #expect(g.storage[i] == 0) }
    #expect(!g.storage.contains { !$0.isFinite })
  }

  @Test func softmaxIsStableForLargeInputs() {
    let tape = Tape(recording: false)
    let x = tape.constant(Tensor(shape: [1, 3], storage: [1000, 1001, -1000]))
    let p = softmax(x).value.storage
    #expect(Swift.abs(p[0] - 0.26894142) < 1e-6 && Swift.abs(p[1] - 0.7310586) < 1e-6 && p[2] == 0)
    let l = logSumExp(x, axis: 1).value.scalar
    #expect(Swift.abs(l - 1001.3133) < 1e-3)
    let allNegInf = tape.constant(Tensor(repeating: -.infinity, shape: [2]))
    #expect(logSumExp(allNegInf, axis: 0).value.scalar == -.infinity)
  }

  @Test func maxGradientGoesToFirstOfTies() {
    let tape = Tape()
    let x = tape.variable(Tensor(shape: [2, 3], storage: [1, 3, 3, 5, 2, 5]))
    let m = max(x, axis: 1)
    #expect(m.value.storage == [3, 5])
    tape.backward(sum(m))
    #expect(tape.gradient(of: x)!.storage == [0, 1, 0, 1, 0, 0])
  }

  @Test func shapeOpsMoveTheRightElements() {
    let tape = Tape(recording: false)
    let x = tape.constant(Tensor(shape: [2, 3], storage: [0, 1, 2, 3, 4, 5]))
    #expect(transpose(x).value.storage == [0, 3, 1, 4, 2, 5])
    #expect(slice(x, axis: 1, range: 1..<3).value.storage == [1, 2, 4, 5])
    #expect(concat([x, x], axis: 1).value.storage == [0, 1, 2, 0, 1, 2, 3, 4, 5, 3, 4, 5])
    #expect(stack([x, x], axis: 0).shape == [2, 2, 3])
    #expect(stack([x, x], axis: 2).value.storage == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5])
    #expect(gather(x, indices: [1, 1, 0]).value.storage == [3, 4, 5, 3, 4, 5, 0, 1, 2])
    #expect(oneHot([2, 0], depth: 3).storage == [0, 0, 1, 1, 0, 0])
    let y = tape.constant(Tensor(shape: [2, 1, 3], storage: [0, 1, 2, 3, 4, 5]))
    #expect(permute(y, [2, 0, 1]).shape == [3, 2, 1])
    #expect(permute(y, [2, 0, 1]).value.storage == [0, 3, 1, 4, 2, 5])
    let b = tape.constant(Tensor(shape: [3], storage: [10, 20, 30]))
    #expect((x + b).value.storage == [10, 21, 32, 13, 24, 35])
    let col = tape.constant(Tensor(shape: [2, 1], storage: [1, 2]))
    #expect((x * col).value.storage == [0, 1, 2, 6, 8, 10])
    #expect(sum(x, axes: [0]).value.storage == [3, 5, 7])
    #expect(mean(x, axes: [1], keepingDims: true).value == Tensor(shape: [2, 1], storage: [1, 4]))
  }

  @Test func dropoutKeepsExpectationAndIsIdentityWhenNotTraining() {
    let tape = Tape(recording: false)
    let x = tape.constant(Tensor(repeating: 1, shape: [10_000]))
    var rng = SeededRandom(seed: 9)
    let y = dropout(x, rate: 0.25, rng: &rng, training: true).value
    let zeros = y.storage.filter { $0 == 0 }.count
    #expect(zeros > 2200 && zeros < 2800)
    #expect(y.storage.allSatisfy { $0 == 0 || Swift.abs($0 - 4.0 / 3.0) < 1e-6 })
    #expect(dropout(x, rate: 0.25, rng: &rng, training: false).value == x.value)
  }

  @Test func inferenceTapeRecordsNoNodes() {
    let tape = Tape(recording: false)
    var rng = SeededRandom(seed: 1)
    let w = Parameter("w", Tensor(randomNormal: [3, 3], rng: &rng))
    let x = tape.constant(Tensor(randomNormal: [2, 3], rng: &rng))
    let y = softmax(tanh(matmul(x, tape.parameter(w)) + 1))
    _ = max(y, axis: 1)
    _ = gather(y, indices: [0, 1])
    #expect(tape.nodeCount == 0)
    #expect(tape.valueCount > 0)
    let recording = Tape()
    _ = sum(recording.parameter(w) * 2)
    #expect(recording.nodeCount == 3)
  }
}
