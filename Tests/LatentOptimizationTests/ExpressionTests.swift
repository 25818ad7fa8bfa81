import LatentOptimization
import Testing

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

@Suite struct ExpressionTests {
  @Test(
    arguments: [
      ("x + 1", 2.0, 3.0),
      ("1 + 2 * 3", 0, 7),  // Python precedence, not the grammar's left-to-right tree
      ("2 * 3 + 1", 0, 7),
      ("x / 2 / 2", 8, 2),  // left associative
      ("3 - 2 - 1", 0, 0),
      ("-x * 2", 3, -6),
      ("sin( x ) * 2", Double.pi / 2, 2),
      ("exp( x * 0 ) + ( 1 / 3 )", 5, 4.0 / 3),
      ("sin(x*x)+x", 3, 3.4121184852417565),
    ] as [(String, Double, Double)])
  func evaluatesHandCheckedValues(_ text: String, _ x: Double, _ expected: Double) throws {
    let e = try Expression(parsing: text)
    #expect(abs(e.evaluate([x])[0] - expected) < 1e-12)
  }

  @Test func divisionByZeroAndOverflowFollowIEEE() throws {
    #expect(try Expression(parsing: "1 / ( x - x )").evaluate([2])[0] == .infinity)
    #expect(try Expression(parsing: "( x - x ) / ( x - x )").evaluate([2])[0].isNaN)
    #expect(try Expression(parsing: "exp( exp( x ) )").evaluate([7])[0] == .infinity)
  }

  @Test(arguments: ["x +", "sin x", "( x", "x )", "2 x", "foo( x )", "", "x $ 1", "1..2"])
  func malformedStringsAreErrors(_ text: String) {
    #expect(throws: ExpressionError.self) { try Expression(parsing: text) }
    #expect(ExpressionObjective().score(text) == (log(1001), false))
  }

  @Test func objectiveScoresHandCheckedCases() throws {
    let o = ExpressionObjective()
    #expect(o.points.count == 1000 && o.points.first == -10 && o.points.last == 10)
    #expect(abs(o.points[1] - (-10 + 20.0 / 999)) < 1e-15)
    #expect(o.score("1 / 3 + x + sin( x * x )").score == 0)
    // Off by a constant c everywhere: log(1 + c²).
    #expect(abs(o.score("1 / 3 + x + sin( x * x ) + 1").score - log(2)) < 1e-12)
    #expect(abs(o.score("x + sin( x * x ) + 2 + 1 / 3").score - log(5)) < 1e-12)
    // Overflow at every point: each error inf, capped at 1000: log(1001).
    #expect(o.score("exp( exp( exp( 3 ) ) )") == (log(1001), true))
    // Division by zero everywhere: inf capped the same way.
    #expect(o.score("1 / ( x - x )") == (log(1001), true))
    // NaN anywhere makes the whole score the worst (numpy's minimum keeps NaN).
    #expect(o.score("x + ( x - x ) / ( x - x )") == (log(1001), true))
    // Errors above 1000 on part of the domain are capped there: (x·x·x − y)² > 1000
    // except near the middle, so the score is close to but below log(1001).
    let cubic = o.score("x * x * x").score
    #expect(cubic < log(1001) && cubic > log(500))
  }
}
