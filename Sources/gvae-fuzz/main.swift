// gvae-fuzz HARNESS [ARGS...]: the fuzz harnesses of FuzzHarnesses.
//
// Built with -DFUZZING and libFuzzer (tools/fuzz.sh), ARGS go to libFuzzer. In the normal
// build, ARGS are files or directories replayed once through the harness (regressions).
import FuzzHarnesses
import Foundation

#if canImport(Glibc)
  import Glibc
#endif

func usage() -> Never {
  var text = "usage: gvae-fuzz HARNESS [FILE|DIR ...]   (libFuzzer flags in a -DFUZZING build)\n"
  text += "harnesses:\n"
  for h in FuzzHarness.all {
    text += "  \(h.name.padding(toLength: 16, withPad: " ", startingAt: 0)) \(h.summary)"
    text += " (-max_len \(h.maxLength))\n"
  }
  FileHandle.standardError.write(Data(text.utf8))
  exit(2)
}

// libFuzzer's fork and merge modes re-run argv without the harness name: the environment
// carries it to those child processes.
let harnessVariable = "GVAE_FUZZ_HARNESS"
var arguments = CommandLine.arguments
if arguments.count == 2 && arguments[1] == "--list" {
  // For tools/fuzz.sh: each harness with its -max_len.
  for h in FuzzHarness.all { print(h.name, h.maxLength) }
  exit(0)
}
let harness: FuzzHarness
if arguments.count > 1, let h = FuzzHarness.named(arguments[1]) {
  harness = h
  arguments.remove(at: 1)
  setenv(harnessVariable, h.name, 1)
} else if let name = ProcessInfo.processInfo.environment[harnessVariable],
  let h = FuzzHarness.named(name)
{
  harness = h
} else {
  usage()
}

#if FUZZING
  // libFuzzer's entry point when its own main is not linked (libclang_rt.fuzzer_no_main).
  @_silgen_name("LLVMFuzzerRunDriver")
  func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
  ) -> Int32

  // The callback is a C function pointer: it cannot capture, so the harness is a global.
  nonisolated(unsafe) var selected: FuzzHarness? = harness
  atexit { removeFuzzScratch() }
  var cArguments: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
  var argc = Int32(arguments.count)
  let status = cArguments.withUnsafeMutableBufferPointer { buffer -> Int32 in
    var argv = buffer.baseAddress!
    return LLVMFuzzerRunDriver(&argc, &argv) { bytes, count in
      let data = bytes.map { Data(bytes: $0, count: count) } ?? Data()
      do { try selected!.run(data) } catch {
        // A failed property is a crash, so libFuzzer saves and minimises the input.
        fatalError("\(error)")
      }
      return 0
    }
  }
  exit(status)
#else
  let paths = arguments.dropFirst()
  if paths.isEmpty { usage() }
  var count = 0
  for p in paths {
    guard FileManager.default.fileExists(atPath: p) else {
      FileHandle.standardError.write(Data("gvae-fuzz: no such file or directory: \(p)\n".utf8))
      exit(2)
    }
    do {
      count += try harness.replay(URL(fileURLWithPath: p)).count
    } catch {
      FileHandle.standardError.write(Data("gvae-fuzz: FAIL \(error)\n".utf8))
      removeFuzzScratch()
      exit(1)
    }
  }
  removeFuzzScratch()
  print("gvae-fuzz: \(harness.name): \(count) inputs replayed, no failures")
#endif
