// Runs every row of the README's bad-input table on the built binary.
import Foundation
import Testing

/// One row: what is wrong, the command line, the stderr excerpt, result lines, exit status.
struct BadInputRow: CustomStringConvertible {
  var what: String
  var command: String
  var message: String
  var results: Int
  var exit: Int32
  var description: String { "\(what): \(command)" }
}

let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
  .deletingLastPathComponent().deletingLastPathComponent()

/// The rows between the table's markers in README.md.
func badInputTable() throws -> [BadInputRow] {
  let readme = try String(
    contentsOf: repositoryRoot.appendingPathComponent("README.md"), encoding: .utf8)
  guard let begin = readme.range(of: "<!-- bad-input-table:begin -->"),
    let end = readme.range(of: "<!-- bad-input-table:end -->")
  else { return [] }
  var rows: [BadInputRow] = []
  for line in readme[begin.upperBound..<end.lowerBound].split(separator: "\n") {
    guard line.hasPrefix("| ") else { continue }
    // Split on "|" not escaped as "\|".
    var cells: [String] = []
    var cell = ""
    var previous: Character = " "
    for ch in line.dropFirst() {
      if ch == "|" && previous != "\\" {
        cells.append(cell.trimmingCharacters(in: .whitespaces))
        cell = ""
      } else {
        if ch == "|" { cell.removeLast() }
        cell.append(ch)
      }
      previous = ch
    }
    guard cells.count == 5, let results = Int(cells[3]), let exit = Int32(cells[4]) else {
      continue  // the header and its rule
    }
    func code(_ s: String) -> String {
      s.hasPrefix("`") && s.hasSuffix("`") ? String(s.dropFirst().dropLast()) : s
    }
    rows.append(
      BadInputRow(
        what: cells[0], command: code(cells[1]), message: code(cells[2]), results: results,
        exit: exit))
  }
  return rows
}

/// Words of a command line: spaces separate, '…' and "…" quote.
func shellWords(_ s: String) -> [String] {
  var words: [String] = []
  var word = ""
  var quote: Character? = nil
  var inWord = false
  for ch in s {
    if let q = quote {
      if ch == q { quote = nil } else { word.append(ch) }
    } else if ch == "'" || ch == "\"" {
      quote = ch
      inWord = true
    } else if ch == " " {
      if inWord { words.append(word) }
      word = ""
      inWord = false
    } else {
      word.append(ch)
      inWord = true
    }
  }
  if inWord { words.append(word) }
  return words
}

/// A copy of a safetensors file with its JSON header edited.
func editedSafeTensors(_ data: Data, _ edit: (inout [String: Any]) -> Void) throws -> Data {
  let n = data.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
  var header = try #require(
    try JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + n))) as? [String: Any])
  edit(&header)
  let json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
  var out = Data((0..<8).map { UInt8((json.count >> (8 * $0)) & 0xFF) })
  out += json
  out += data.subdata(in: (8 + n)..<data.count)
  return out
}

/// The files the table's commands name, written into `dir`.
func writeBadInputFiles(in dir: URL) throws {
  func write(_ name: String, _ text: String) throws {
    try text.write(to: dir.appendingPathComponent(name), atomically: true, encoding: .utf8)
  }
  try write("nopad.cfg", "S -> S \"+\" T | T\nT -> \"x\" | \"1\"\n")
  try write("nopad.txt", "x+1\nx+x\n1+1+x\nx\n")
  try write("broken.cfg", "S -> \"x\" \"y\n")
  try write("empty.cfg", "")
  try write("nostart.cfg", "S -> T\n")
  try write("eq.txt", "x + 1\nsin(x)\nx * 2\nexp(x) + 3\nx / 2\n(x + 1)\n1 + 2\nx\n")
  try write("corrupt.safetensors", "not a model at all\n")
  try write(
    "deep.txt", String(repeating: "(", count: 49_999) + "x" + String(repeating: ")", count: 49_999) + "\n")
  try write(
    "deep.smi", String(repeating: "C(", count: 33_333) + "C" + String(repeating: ")", count: 33_333) + "\n")

  let model = try Data(contentsOf: repositoryRoot.appendingPathComponent("Models/equation.safetensors"))
  try model.prefix(model.count / 2).write(to: dir.appendingPathComponent("truncated.safetensors"))
  func configured(_ key: String, _ value: Int) throws -> Data {
    try editedSafeTensors(model) { h in
      var meta = h["__metadata__"] as! [String: Any]
      let config = meta["gvae.configuration"] as! String
      var c = try! JSONSerialization.jsonObject(with: Data(config.utf8)) as! [String: Any]
      c[key] = value
      meta["gvae.configuration"] = String(
        decoding: try! JSONSerialization.data(withJSONObject: c), as: UTF8.self)
      h["__metadata__"] = meta
    }
  }
  try configured("gruHidden", 1_000_000_000).write(to: dir.appendingPathComponent("huge.safetensors"))
  try configured("steps", Int.max).write(to: dir.appendingPathComponent("overflow.safetensors"))
  try editedSafeTensors(model) { h in
    // The second GRU bias claims the first one's bytes.
    var a = h["decoder.gru.bias_hh_l0"] as! [String: Any]
    var b = h["decoder.gru.bias_hh_l1"] as! [String: Any]
    let ao = a["data_offsets"] as! [Int]
    let bo = b["data_offsets"] as! [Int]
    b["data_offsets"] = [ao[0], ao[0] + bo[1] - bo[0]]
    a["data_offsets"] = ao
    h["decoder.gru.bias_hh_l0"] = a
    h["decoder.gru.bias_hh_l1"] = b
  }.write(to: dir.appendingPathComponent("overlap.safetensors"))
  try FileManager.default.copyItem(
    at: repositoryRoot.appendingPathComponent(
      "Tests/GrammarVAETests/Fixtures/tiny-grammar-v1.safetensors"),
    to: dir.appendingPathComponent("format1.safetensors"))

  // A real checkpoint, then its epoch counter set to -3.
  let r = try gvae(
    [
      "train", "--preset", "tiny", "--grammar", "equation", "--data", "eq.txt", "--output",
      "bad.safetensors", "--epochs", "1", "--hold-out", "2",
    ], in: dir)
  try #require(r.status == 0, "training the checkpoint fixture failed: \(r.stderr)")
  let checkpoint = dir.appendingPathComponent("bad.safetensors.checkpoint")
  try editedSafeTensors(try Data(contentsOf: checkpoint)) { h in
    var meta = h["__metadata__"] as! [String: Any]
    var state = try! JSONSerialization.jsonObject(
      with: Data((meta["gvae.trainer_state"] as! String).utf8)) as! [String: Any]
    state["epoch"] = -3
    meta["gvae.trainer_state"] = String(
      decoding: try! JSONSerialization.data(withJSONObject: state), as: UTF8.self)
    h["__metadata__"] = meta
  }.write(to: checkpoint)
}

@Suite struct BadInputTableTests {
  @Test func everyRowOfTheReadmeTableHolds() throws {
    let rows = try badInputTable()
    #expect(rows.count >= 30, "README bad-input table has \(rows.count) rows")
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent(
      "gvae-bad-input-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    try writeBadInputFiles(in: dir)
    let binary = try #require(gvaeBinary)
    for row in rows {
      var command = row.command
      var stdin = ""
      if command.hasPrefix("printf '"), let close = command.dropFirst(8).firstIndex(of: "'"),
        let pipe = command.range(of: " | ", range: close..<command.endIndex)
      {
        stdin = String(command[command.index(command.startIndex, offsetBy: 8)..<close])
          .replacingOccurrences(of: "\\n", with: "\n")
        command = String(command[pipe.upperBound...])
      }
      if let redirect = command.range(of: " < ") {
        let file = String(command[redirect.upperBound...])
        stdin = try String(contentsOf: dir.appendingPathComponent(file), encoding: .utf8)
        command = String(command[..<redirect.lowerBound])
      }
      var words = shellWords(command)
      let program = words.removeFirst()
      #expect(program == "gvae" || program == "gvae-bench", "\(row)")
      let executable =
        program == "gvae" ? binary : binary.deletingLastPathComponent().appendingPathComponent(program)
      let r = try gvae(words, stdin: stdin, in: dir, executable: executable)
      #expect(r.status == row.exit, "\(row): exit \(r.status), stderr \(r.stderr)")
      if row.message.hasPrefix("(none") {
        #expect(!r.stderr.contains("error"), "\(row): stderr \(r.stderr)")
      } else {
        #expect(r.stderr.contains(row.message), "\(row): stderr was \(r.stderr)")
      }
      let lines = r.stdout.split(separator: "\n", omittingEmptySubsequences: false).count - 1
      #expect(lines == row.results, "\(row): \(lines) result lines: \(r.stdout.prefix(300))")
      #expect(
        !r.stderr.contains("Fatal error") && !r.stderr.contains("Stack dump"), "\(row)")
    }
  }
}
