// Limited-memory BFGS with box bounds by projection, for GP hyperparameters and acquisitions.

/// Minimises `f` from `x0` with L-BFGS (memory 10) and a backtracking Armijo line search.
/// Bounds, when given, are enforced by projecting every trial point onto the box (a simple
/// stand-in for L-BFGS-B: the search direction ignores active bounds except through the
/// projection). A non-finite value at a trial point counts as a failed step.
///
/// - Returns: the best point found and its value.
public func minimizeLBFGS(
  _ f: ([Double]) -> (value: Double, gradient: [Double]), from x0: [Double],
  lower: [Double]? = nil, upper: [Double]? = nil, iterations: Int = 100,
  gradientTolerance: Double = 1e-6
) -> (x: [Double], value: Double) {
  let n = x0.count
  func project(_ x: [Double]) -> [Double] {
    var y = x
    if let lower { for i in 0..<n { y[i] = max(y[i], lower[i]) } }
    if let upper { for i in 0..<n { y[i] = min(y[i], upper[i]) } }
    return y
  }
  var x = project(x0)
  var (fx, g) = f(x)
  guard fx.isFinite, g.allSatisfy(\.isFinite) else { return (x, fx) }
  var sHistory: [[Double]] = []
  var yHistory: [[Double]] = []
  for _ in 0..<iterations {
    // Projected-gradient norm: zero at a constrained stationary point.
    let pg = project(zip(x, g).map { $0 - $1 })
    if zip(pg, x).map({ abs($0 - $1) }).max() ?? 0 < gradientTolerance { break }
    // Bounds the gradient pushes against are active: the quasi-Newton step works in the
    // other coordinates only.
    var active = [Bool](repeating: false, count: n)
    for i in 0..<n {
      if let lower, x[i] <= lower[i], g[i] > 0 { active[i] = true }
      if let upper, x[i] >= upper[i], g[i] < 0 { active[i] = true }
    }
    // Two-loop recursion.
    var q = g
    for i in 0..<n where active[i] { q[i] = 0 }
    var alphas: [Double] = []
    for (s, y) in zip(sHistory, yHistory).reversed() {
      let a = dot(s, q) / dot(y, s)
      alphas.append(a)
      for i in 0..<n { q[i] -= a * y[i] }
    }
    if let s = sHistory.last, let y = yHistory.last {
      let gamma = dot(s, y) / dot(y, y)
      for i in 0..<n { q[i] *= gamma }
    } else {
      // First step: at most unit length.
      let norm = dot(g, g).squareRoot()
      if norm > 1 { for i in 0..<n { q[i] /= norm } }
    }
    for ((s, y), a) in zip(zip(sHistory, yHistory), alphas.reversed()) {
      let b = dot(y, q) / dot(y, s)
      for i in 0..<n { q[i] += (a - b) * s[i] }
    }
    // Components that would leave the box at an active bound are frozen.
    func freeze(_ d: [Double]) -> [Double] {
      var d = d
      for i in 0..<n {
        if active[i] { d[i] = 0 }
        if let lower, x[i] <= lower[i], d[i] < 0 { d[i] = 0 }
        if let upper, x[i] >= upper[i], d[i] > 0 { d[i] = 0 }
      }
      return d
    }
    var direction = freeze(q.map { -$0 })
    if dot(direction, g) >= 0 {
      direction = freeze(g.map { -$0 })
      sHistory.removeAll()
      yHistory.removeAll()
    }
    var step = 1.0
    var accepted: (x: [Double], f: Double, g: [Double])? = nil
    for _ in 0..<30 {
      let trial = project(zip(x, direction).map { $0 + step * $1 })
      let (ft, gt) = f(trial)
      let decrease = dot(g, zip(trial, x).map { $0 - $1 })
      if ft.isFinite, gt.allSatisfy(\.isFinite), ft <= fx + 1e-4 * min(decrease, 0) {
        accepted = (trial, ft, gt)
        break
      }
      step *= 0.5
    }
    guard let (xn, fn, gn) = accepted else { break }
    let s = zip(xn, x).map { $0 - $1 }
    let y = zip(gn, g).map { $0 - $1 }
    if dot(s, y) > 1e-12 * dot(y, y).squareRoot() * dot(s, s).squareRoot() {
      sHistory.append(s)
      yHistory.append(y)
      if sHistory.count > 10 {
        sHistory.removeFirst()
        yHistory.removeFirst()
      }
    }
    let improvement = fx - fn
    x = xn
    fx = fn
    g = gn
    if improvement <= 1e-12 * max(1, abs(fx)) { break }
  }
  return (x, fx)
}
