import Engine
import LatentOptimization

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

func randomMatrix(_ rows: Int, _ columns: Int, rng: inout SeededRandom, scale: Double = 1) -> Matrix
{
  Matrix(
    rows: rows, columns: columns,
    storage: (0..<(rows * columns)).map { _ in scale * Double(rng.nextNormal()) })
}

/// Worst `|a − n| / max(1e-3, |a|, |n|)` between an analytic gradient and central differences.
func worstGradientError(
  _ f: ([Double]) -> Double, at x: [Double], analytic: [Double], step: Double = 1e-5
) -> (error: Double, index: Int) {
  var worst = (0.0, -1)
  for i in x.indices {
    var p = x
    var m = x
    p[i] += step
    m[i] -= step
    let numeric = (f(p) - f(m)) / (2 * step)
    let e = abs(analytic[i] - numeric) / max(1e-3, abs(analytic[i]), abs(numeric))
    if e > worst.0 { worst = (e, i) }
  }
  return worst
}

func maxAbsDifference(_ a: [Double], _ b: [Double]) -> Double {
  zip(a, b).map { abs($0 - $1) }.max() ?? 0
}
