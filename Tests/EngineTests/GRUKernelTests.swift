import Engine
import Foundation
import Testing

/// The fused GRU gate kernels against the equations written out in double precision.
@Suite struct GRUKernelTests {
  func values(_ n: Int, seed: UInt64, scale: Float = 1) -> [Float] {
    var rng = SeededRandom(seed: seed)
    return (0..<n).map { _ in scale * Float(rng.nextUniform() * 2 - 1) }
  }

  @Test(arguments: [false, true])
  func forwardRowsMatchEquations(withPrevious: Bool) {
    let (rows, H) = (3, 21)  // not a multiple of the vector width
    let gi = values(rows * 3 * H, seed: 1, scale: 3)
    let gh = values(rows * 3 * H, seed: 2, scale: 3)
    let bhn = values(H, seed: 3)
    let hp = values(rows * 2 * H, seed: 4)  // stride 2H
    var h = [Float](repeating: 0, count: rows * H)
    var gates = [Float](repeating: 0, count: rows * 4 * H)
    hp.withUnsafeBufferPointer { php in
      Kernels.gruForwardRows(
        rows, hidden: H, gi: gi, giStride: 3 * H, gh: gh, ghStride: 3 * H, biasHN: bhn,
        hPrev: withPrevious ? php.baseAddress! : nil, hPrevStride: 2 * H, hNext: &h,
        hNextStride: H, gates: &gates, gatesStride: 4 * H)
    }
    for b in 0..<rows {
      for j in 0..<H {
        func sig(_ v: Double) -> Double { 1 / (1 + Foundation.exp(-v)) }
        let o = b * 3 * H
        let r = sig(Double(gi[o + j] + gh[o + j]))
        let z = sig(Double(gi[o + H + j] + gh[o + H + j]))
        let ghn = Double(gh[o + 2 * H + j] + bhn[j])
        let n = Foundation.tanh(Double(gi[o + 2 * H + j]) + r * ghn)
        let prev = withPrevious ? Double(hp[b * 2 * H + j]) : 0
        let want = (1 - z) * n + z * prev
        #expect(abs(Double(h[b * H + j]) - want) < 1e-5)
        let g = b * 4 * H
        #expect(abs(Double(gates[g + j]) - r) < 1e-6)
        #expect(abs(Double(gates[g + H + j]) - z) < 1e-6)
        #expect(abs(Double(gates[g + 2 * H + j]) - n) < 1e-5)
        #expect(abs(Double(gates[g + 3 * H + j]) - ghn) < 1e-5)
      }
    }
  }

  @Test func backwardRowsMatchEquations() {
    let (rows, H) = (2, 19)
    var gates = values(rows * 4 * H, seed: 5)
    for i in 0..<gates.count where (i / H) % 4 < 2 { gates[i] = 0.5 + 0.4 * gates[i] }  // r, z
    let hp = values(rows * H, seed: 6)
    let dy = values(rows * 3 * H, seed: 7)  // stride 3H
    let dh0 = values(rows * H, seed: 8)
    var dh = dh0
    var out = [Float](repeating: 0, count: rows * 4 * H)
    Kernels.gruBackwardRows(
      rows, hidden: H, gates: gates, gatesStride: 4 * H, hPrev: hp, hPrevStride: H, dy: dy,
      dyStride: 3 * H, dh: &dh, dhStride: H, out: &out, outStride: 4 * H)
    for b in 0..<rows {
      for j in 0..<H {
        let g = b * 4 * H
        let (r, z, n, ghn) = (
          gates[g + j], gates[g + H + j], gates[g + 2 * H + j], gates[g + 3 * H + j]
        )
        let d = dy[b * 3 * H + j] + dh0[b * H + j]
        let dan = d * (1 - z) * (1 - n * n)
        #expect(abs(out[g + j] - dan * ghn * r * (1 - r)) < 1e-6)
        #expect(abs(out[g + H + j] - d * (hp[b * H + j] - n) * z * (1 - z)) < 1e-6)
        #expect(abs(out[g + 2 * H + j] - dan * r) < 1e-6)
        #expect(abs(out[g + 3 * H + j] - dan) < 1e-6)
        #expect(abs(dh[b * H + j] - d * z) < 1e-6)
      }
    }
  }

  @Test func blasThreadCountCanChange() {
    let before = BLAS.threadCount
    BLAS.setThreadCount(1)
    if BLAS.usesLibrary { #expect(BLAS.threadCount == 1) }
    var c = [Float](repeating: 0, count: 4)
    BLAS.sgemm(
      transposeA: false, transposeB: false, m: 2, n: 2, k: 2, alpha: 1, a: [1, 2, 3, 4], lda: 2,
      b: [1, 0, 0, 1], ldb: 2, beta: 0, c: &c, ldc: 2)
    BLAS.setThreadCount(before)
    #expect(c == [1, 2, 3, 4])
  }
}
