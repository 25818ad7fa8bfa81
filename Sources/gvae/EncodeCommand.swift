import Engine
import ArgumentParser
import CFG
import Foundation
import GrammarVAE
import NN

struct EncodeCommand: ParsableCommand, RunsAsSeveralProcesses {
  static let configuration = CommandConfiguration(
    commandName: "encode",
    abstract: "Encode strings to latent vectors (posterior means; --stochastic samples q(z|x)).",
    discussion: "With no strings, reads one per line from stdin. Prints one vector per line.")

  @OptionGroup var modelOption: ModelOption
  @Option(help: "Output: text (numbers separated by spaces) or json.") var format: OutputFormat =
    .text
  @Flag(help: "Sample z ~ q(z|x) instead of printing the mean.") var stochastic = false
  @Option(help: "Random seed for --stochastic.") var seed: UInt64 = 0
  @Argument(help: "Strings to encode (default: stdin, one per line).") var strings: [String] = []

  func run() throws {
    let model = try modelOption.load()
    if Cluster.world.size > 1 { return try runSharded(model) }
    var rng = SeededRandom(seed: seed)
    let out = OutputBuffer()
    let report = ItemReporter(format: format, out: out)
    var items = InputItems(strings)
    try items.forEachBlock(256, flushing: out) { block, first in
      try forEachEncodable(block, first: first, model: model, report: report) { good in
        let z = try model.encode(good.map(\.input), stochastic: stochastic, rng: &rng)
        for (g, v) in zip(good, z) {
          switch format {
          case .text: out.write(formatVector(v) + "\n")
          case .json: out.write("{\"input\":\(jsonString(g.input)),\"z\":\(jsonVector(v))}\n")
          }
        }
      }
    }
    try report.finish(items: items.count)
  }
}

extension EncodeCommand {
  /// Under mpirun: rank 0 reads each block of inputs and broadcasts it, every rank encodes
  /// its contiguous share (drawing the noise one process would draw for those strings), and
  /// rank 0 prints the shares in order, so the output is one process's, byte for byte.
  func runSharded(_ model: VAEModel) throws {
    let cluster = Cluster.world
    var rng = SeededRandom(seed: seed)
    let out = OutputBuffer()
    var items = InputItems(cluster.isRoot ? strings : [])
    let Z = model.configuration.latentSize
    var failures = 0
    var total = 0
    while true {
      let first = total + 1
      let block = Self.unpack(cluster.broadcast(bytes: cluster.isRoot ? Self.pack(items.nextBlock(256 * cluster.size)) : []))
      if block.isEmpty { break }
      total += block.count
      // Which strings encode (cheap, so every rank checks the whole block).
      let errors = block.map { s -> String? in
        do throws(SequenceError) {
          _ = try model.codec.encode(s)
          return nil
        } catch { return error.description }
      }
      // Shares of 256, one process's blocks: the same rows meet in the same matrix products,
      // so even the rounding is one process's.
      let lo = min(block.count, 256 * cluster.rank)
      let hi = min(block.count, 256 * (cluster.rank + 1))
      var mine = rng
      if stochastic { for _ in 0..<(errors[..<lo].filter { $0 == nil }.count * Z) { _ = mine.nextNormal() } }
      var text = ""
      var stop: String? = nil
      var run: [Int] = []
      func flush() throws {
        guard !run.isEmpty else { return }
        let z = try model.encode(run.map { block[$0] }, stochastic: stochastic, rng: &mine)
        for (k, v) in zip(run, z) {
          switch format {
          case .text: text += formatVector(v) + "\n"
          case .json: text += "{\"input\":\(jsonString(block[k])),\"z\":\(jsonVector(v))}\n"
          }
        }
        run.removeAll()
      }
      for k in lo..<hi {
        guard let e = errors[k] else {
          run.append(k)
          continue
        }
        try flush()
        switch format {
        case .json:
          text += "{\"input\":\(jsonString(block[k])),\"error\":{\"line\":\(first + k),"
            + "\"message\":\(jsonString(e))}}\n"
        case .text:
          stop = "line \(first + k): \(e)  [input: \(block[k].prefix(200))]"
        }
        if stop != nil { break }
      }
      try flush()
      if stochastic { for _ in 0..<(errors.filter { $0 == nil }.count * Z) { _ = rng.nextNormal() } }
      failures += errors.filter { $0 != nil }.count
      // Rank 0 prints the shares in rank order; a text-mode error stops at its place.
      let parts = cluster.gather(bytes: Array((text + "\u{0}" + (stop ?? "")).utf8))
      var stopped: String? = nil
      if cluster.isRoot {
        for part in parts {
          let s = String(decoding: part, as: UTF8.self)
          let pieces = s.split(separator: "\u{0}", maxSplits: 1, omittingEmptySubsequences: false)
          out.write(String(pieces[0]))
          if pieces.count > 1, !pieces[1].isEmpty {
            stopped = String(pieces[1])
            break
          }
        }
        out.flush()
      }
      var anyStop = [stop != nil ? 1.0 : 0]
      cluster.allReduceSum(&anyStop)
      if anyStop[0] > 0 {
        if let stopped { throw fail(stopped) }
        throw ExitCode(1)
      }
    }
    out.flush()
    if failures > 0 {
      guard cluster.isRoot else { throw ExitCode(1) }
      throw fail("\(failures) of \(total) inputs failed (see their \"error\")")
    }
  }

  /// Strings as length-prefixed bytes, and back.
  static func pack(_ strings: [String]) -> [UInt8] {
    var b: [UInt8] = []
    for s in strings {
      let u = Array(s.utf8)
      withUnsafeBytes(of: UInt32(u.count).littleEndian) { b += $0 }
      b += u
    }
    return b
  }

  static func unpack(_ b: [UInt8]) -> [String] {
    var out: [String] = []
    var i = 0
    while i + 4 <= b.count {
      let n = Int(b[i]) | Int(b[i + 1]) << 8 | Int(b[i + 2]) << 16 | Int(b[i + 3]) << 24
      i += 4
      guard n <= b.count - i else { break }
      out.append(String(decoding: b[i..<(i + n)], as: UTF8.self))
      i += n
    }
    return out
  }
}

/// Runs `body` on the runs of strings of a block that encode, reporting each one that does
/// not in its place (so results keep the input order and good ones before a bad one print).
func forEachEncodable(
  _ block: [String], first: Int, model: VAEModel, report: ItemReporter,
  _ body: ([(number: Int, input: String)]) throws -> Void
) throws {
  var good: [(number: Int, input: String)] = []
  for (k, s) in block.enumerated() {
    do throws(SequenceError) {
      _ = try model.codec.encode(s)
      good.append((first + k, s))
    } catch {
      if !good.isEmpty { try body(good) }
      good.removeAll()
      try report.report(line: first + k, input: s, message: error.description)
    }
  }
  if !good.isEmpty { try body(good) }
}
