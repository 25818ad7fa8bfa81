// An objective computed by another program: strings on its stdin, one score per line back.
import Foundation

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Why an external scorer failed.
public struct ExternalObjectiveError: Error, CustomStringConvertible {
  public var message: String
  public var description: String { message }
}

/// A scorer process started once and fed batches over a pipe. Protocol: the program reads
/// one string per line on stdin and, for each, writes one line to stdout: a number, or
/// `nan` / `invalid` / an empty line for a string it cannot score. Lines are answered in
/// order; the program must flush after each line (or each batch).
public final class ExternalObjective {
  let process: Process
  let input: FileHandle
  let output: FileHandle
  let command: String
  var buffer: [UInt8] = []
  /// Seconds without an answer before `onStall` is told (once per scorer): a scorer that
  /// buffers its output waits for more input while we wait for its answer.
  public var stallSeconds: Double = 10
  public var onStall: (String) -> Void = { FileHandle.standardError.write(Data(("gvae: " + $0 + "\n").utf8)) }
  var warned = false

  /// Starts `command` with `/bin/sh -c`.
  public init(command: String) throws {
    self.command = command
    process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/sh")
    process.arguments = ["-c", command]
    let inPipe = Pipe()
    let outPipe = Pipe()
    process.standardInput = inPipe
    process.standardOutput = outPipe
    process.standardError = FileHandle.standardError
    do {
      try process.run()
    } catch {
      throw ExternalObjectiveError(message: "cannot start scorer '\(command)': \(error)")
    }
    input = inPipe.fileHandleForWriting
    output = outPipe.fileHandleForReading
    // A scorer that dies must not kill us with SIGPIPE on the next write.
    signal(SIGPIPE, SIG_IGN)
  }

  /// Scores a batch: one value per string, nil where the scorer said it cannot score it.
  /// - Throws: when the scorer exits, closes its output, or answers with something that is
  ///   neither a number nor an invalid marker (the message quotes the line).
  public func score(_ strings: [String]) throws -> [Double?] {
    // Chunks small enough that neither pipe fills while the other side waits (a deadlock).
    var out: [Double?] = []
    var start = 0
    while start < strings.count {
      let end = min(strings.count, start + 256)
      out += try scoreChunk(Array(strings[start..<end]))
      start = end
    }
    return out
  }

  func scoreChunk(_ strings: [String]) throws -> [Double?] {
    var text = ""
    for s in strings {
      guard !s.contains("\n") && !s.contains("\r") else {
        throw ExternalObjectiveError(message: "string to score contains a line break")
      }
      text += s + "\n"
    }
    do {
      try input.write(contentsOf: Data(text.utf8))
    } catch {
      throw ExternalObjectiveError(message: "scorer '\(command)' stopped reading (\(exitNote()))")
    }
    var out: [Double?] = []
    for s in strings {
      guard let line = readLine() else {
        // Its output ended, so it is exiting: wait for the status to report it.
        process.waitUntilExit()
        throw ExternalObjectiveError(
          message: "scorer '\(command)' closed its output after \(out.count) of "
            + "\(strings.count) scores (\(exitNote()))")
      }
      let t = line.trimmingCharacters(in: .whitespaces)
      if t.isEmpty || ["nan", "invalid", "none"].contains(t.lowercased()) {
        out.append(nil)
      } else if let v = Double(t), v.isFinite {
        out.append(v)
      } else {
        throw ExternalObjectiveError(
          message: "scorer '\(command)' answered '\(t.prefix(80))' for '\(s.prefix(80))': "
            + "expected a number, nan or invalid")
      }
    }
    return out
  }

  func exitNote() -> String {
    if process.isRunning { return "still running" }
    return "exit status \(process.terminationStatus)"
  }

  func readLine() -> String? {
    while true {
      if let nl = buffer.firstIndex(of: 0x0A) {
        let line = String(decoding: buffer[..<nl], as: UTF8.self)
        buffer.removeSubrange(...nl)
        return line
      }
      if !warned {
        var fds = pollfd(fd: output.fileDescriptor, events: Int16(POLLIN), revents: 0)
        if poll(&fds, 1, Int32(max(1, stallSeconds * 1000))) == 0 {
          warned = true
          onStall(
            "no answer from scorer '\(command)' for \(Int(stallSeconds)) s; still waiting. A scorer "
              + "must flush each answer line (python3 -u, awk -W interactive, stdbuf -oL, fflush)")
          continue
        }
      }
      let chunk = output.availableData
      if chunk.isEmpty {
        if buffer.isEmpty { return nil }
        let line = String(decoding: buffer, as: UTF8.self)
        buffer.removeAll()
        return line
      }
      buffer += chunk
    }
  }

  /// Closes the scorer's stdin and waits for it to exit.
  public func close() {
    try? input.close()
    process.waitUntilExit()
  }

  deinit {
    if process.isRunning {
      try? input.close()
      process.waitUntilExit()
    }
  }
}
