import Engine
import LatentOptimization
import Testing

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

@Suite struct BayesianOptimizationTests {
  /// A 2-D function with its minimum 0 at (0.3, −0.2) and a second, worse basin.
  static func synthetic(_ v: [Double]) -> Double {
    let a = (v[0] - 0.3) * (v[0] - 0.3) + (v[1] + 0.2) * (v[1] + 0.2)
    let b = (v[0] + 0.6) * (v[0] + 0.6) + (v[1] - 0.6) * (v[1] - 0.6)
    return a * (0.3 + b)
  }

  @Test func exactGPBatchesFindTheSyntheticOptimum() throws {
    var rng = SeededRandom(seed: 15)
    let box = Box(lower: [-1, -1], upper: [1, 1])
    var x = box.uniform(10, rng: &rng)
    var y = x.rowVectors.map(Self.synthetic)
    var options = AcquisitionOptions()
    options.candidates = 2000
    for _ in 0..<5 {
      let batch = try proposeBatch(
        inputs: x, targets: y, kind: .exact, count: 5, box: box, options: options, rng: &rng)
      #expect(batch.count == 5)
      for p in batch {
        #expect(p.indices.allSatisfy { p[$0] >= -1 && p[$0] <= 1 })
        x.appendRow(p)
        y.append(Self.synthetic(p))
      }
    }
    // 35 evaluations; uniform random search reaches 1e-3 with about 3% probability.
    #expect(y.min()! < 1e-3, "best \(y.min()!)")
  }

  @Test func sparseGPBatchesImproveOnTheData() throws {
    var rng = SeededRandom(seed: 16)
    let box = Box(lower: [-1, -1], upper: [1, 1])
    // Data that avoids the optimum's neighbourhood.
    var x = Matrix(rows: 0, columns: 2)
    while x.rows < 200 {
      let p = box.uniform(1, rng: &rng).row(0)
      if Self.synthetic(p) > 0.05 { x.appendRow(p) }
    }
    var y = x.rowVectors.map(Self.synthetic)
    var o = SparseGP.TrainingOptions()
    o.inducingPoints = 40
    o.epochs = 30
    o.batchSize = 100
    o.learningRate = 0.02
    var options = AcquisitionOptions()
    options.candidates = 2000
    for _ in 0..<2 {
      let batch = try proposeBatch(
        inputs: x, targets: y, kind: .sparse(o), count: 5, box: box, options: options, rng: &rng)
      for p in batch {
        x.appendRow(p)
        y.append(Self.synthetic(p))
      }
    }
    #expect(y.suffix(10).min()! < 0.01, "best proposal \(y.suffix(10).min()!)")
  }

  @Test func kriggingBelieverSpreadsTheBatch() throws {
    var rng = SeededRandom(seed: 17)
    let box = Box(lower: [-1, -1], upper: [1, 1])
    let x = box.uniform(15, rng: &rng)
    let y = x.rowVectors.map(Self.synthetic)
    var options = AcquisitionOptions()
    options.candidates = 1000
    let batch = try proposeBatch(
      inputs: x, targets: y, kind: .exact, count: 4, box: box, options: options, rng: &rng)
    for i in 0..<4 {
      for j in (i + 1)..<4 {
        let d = zip(batch[i], batch[j]).map { ($0 - $1) * ($0 - $1) }.reduce(0, +)
        #expect(d > 1e-6, "points \(i) and \(j) coincide")
      }
    }
  }
}

@Suite struct ExternalObjectiveTests {
  @Test func scoresOverAPipeInOrder() throws {
    let o = try ExternalObjective(
      command: "while read l; do case \"$l\" in bad) echo nan;; *) echo ${#l}.5;; esac; done")
    #expect(try o.score(["ab", "bad", "xyz"]) == [2.5, nil, 3.5])
    #expect(try o.score(["q"]) == [1.5])
    o.close()
  }

  @Test func nonNumberIsAClearError() throws {
    let o = try ExternalObjective(command: "while read l; do echo hello; done")
    do {
      _ = try o.score(["a"])
      Issue.record("no error")
    } catch {
      #expect("\(error)".contains("answered 'hello'"))
    }
    o.close()
  }

  /// A scorer that holds its answers back (block-buffered output) gets a note that says why
  /// we wait, and its late answers still count.
  @Test func slowScorerGetsAStallNote() throws {
    let o = try ExternalObjective(command: "read l; sleep 1; echo 7")
    o.stallSeconds = 0.2
    let notes = NoteBox()
    o.onStall = { notes.add($0) }
    #expect(try o.score(["a"]) == [7])
    #expect(notes.notes.count == 1)
    #expect(notes.notes.first?.contains("must flush each answer line") == true)
  }

  @Test func crashedScorerIsAClearError() throws {
    let o = try ExternalObjective(command: "read l; echo 1; exit 3")
    do {
      _ = try o.score(["a", "b", "c"])
      Issue.record("no error")
    } catch {
      #expect(
        "\(error)".contains("closed its output after 1 of 3 scores (exit status 3)"), "\(error)")
    }
  }
}

final class NoteBox: @unchecked Sendable {
  var notes: [String] = []
  func add(_ s: String) { notes.append(s) }
}
