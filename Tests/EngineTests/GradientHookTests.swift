import Engine
import Testing

/// `Tape.onParameterGradient` fires once per parameter, when its gradient is final: a
/// parameter used twice is reported after its second (earlier) use, with the full sum.
@Suite struct GradientHookTests {
  @Test func reportsEachParameterOnceWithItsFinalGradient() {
    let a = Parameter("a", Tensor(shape: [2], storage: [1, 2]))
    let b = Parameter("b", Tensor(shape: [2], storage: [3, -1]))
    let unused = Parameter("unused", Tensor(shape: [1], storage: [5]))
    let tape = Tape()
    var seen: [(String, [Float])] = []
    tape.onParameterGradient = { p in seen.append((p.name, p.gradient.storage)) }
    let va = tape.parameter(a)
    let vb = tape.parameter(b)
    _ = tape.parameter(unused)
    // loss = sum(a * b) + sum(a * a) uses a twice: d/da = b + 2a, d/db = a.
    let va2 = tape.parameter(a)
    let loss = sum(va * vb) + sum(va2 * va2)
    tape.backward(loss)
    let names = seen.map(\.0)
    #expect(names.filter { $0 == "a" }.count == 1)
    #expect(names.filter { $0 == "b" }.count == 1)
    #expect(seen.first { $0.0 == "a" }?.1 == [3 + 2, -1 + 4])
    #expect(seen.first { $0.0 == "b" }?.1 == [1, 2])
    #expect(a.gradient.storage == [5, 3])
    // Without a hook the result is the same.
    let a2 = Parameter("a", Tensor(shape: [2], storage: [1, 2]))
    let b2 = Parameter("b", Tensor(shape: [2], storage: [3, -1]))
    let t2 = Tape()
    let x = t2.parameter(a2)
    t2.backward(sum(x * t2.parameter(b2)) + sum(t2.parameter(a2) * t2.parameter(a2)))
    #expect(a2.gradient.storage == a.gradient.storage && b2.gradient.storage == b.gradient.storage)
  }
}
