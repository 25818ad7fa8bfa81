import Engine
import TestSupport
import Testing

@Suite struct CoreTests {
  @Test func matmulMultiplySumGradients() {
    var rng = SeededRandom(seed: 1)
    let a = Tensor(randomNormal: [3, 4], rng: &rng)
    let b = Tensor(randomNormal: [4, 2], rng: &rng)
    let c = Tensor(randomNormal: [3, 2], rng: &rng)
    let r = checkGradients([a, b, c]) { v in sum(matmul(v[0], v[1]) * v[2] + v[2]) }
    #expect(r.worstError < 1e-2, "\(r)")
  }

  @Test func seededRandomIsRepeatable() {
    var r1 = SeededRandom(seed: 42)
    var r2 = SeededRandom(seed: 42)
    #expect(Tensor(randomNormal: [100], rng: &r1) == Tensor(randomNormal: [100], rng: &r2))
  }
}
