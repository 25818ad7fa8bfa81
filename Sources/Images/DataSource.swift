// Finding a training and a test set in a directory or a file, and binarising them.
import Engine
import Foundation

/// A data set's training and test images and where they came from.
public struct ImageData: Sendable {
  public var train: ImageSet
  public var test: ImageSet
  /// "mnist-idx", "npy" or "digits-csv".
  public var layout: String
  /// How the test set was chosen, in words.
  public var testSplit: String

  public init(train: ImageSet, test: ImageSet, layout: String, testSplit: String) {
    self.train = train
    self.test = test
    self.layout = layout
    self.testSplit = testSplit
  }

  /// The layouts understood:
  /// - a directory with `train-images-idx3-ubyte` and `t10k-images-idx3-ubyte` (each
  ///   optionally `.gz`; labels `*-labels-idx1-ubyte` read when present): MNIST and
  ///   Fashion-MNIST, whose own test set is the test set;
  /// - a `.npy` file, or a directory holding exactly one;
  /// - a digits `.csv`/`.csv.gz` file, or a directory holding exactly one.
  /// Single-file sets have no test split of their own: every 10th image (indices 9, 19, …) is
  /// the test set, the rest the training set.
  public static func load(_ path: String) throws(ImageDataError) -> ImageData {
    let fm = FileManager.default
    var isDir: ObjCBool = false
    guard fm.fileExists(atPath: path, isDirectory: &isDir) else {
      throw .unreadable(path: path, "no such file or directory")
    }
    guard isDir.boolValue else { return try loadFile(path) }
    func find(_ stem: String) -> String? {
      for name in [stem, stem + ".gz"] {
        let p = (path as NSString).appendingPathComponent(name)
        if fm.fileExists(atPath: p) { return p }
      }
      return nil
    }
    if let trainImages = find("train-images-idx3-ubyte") {
      guard let testImages = find("t10k-images-idx3-ubyte") else {
        throw .unknownLayout(
          path: path, "train-images-idx3-ubyte is there but not t10k-images-idx3-ubyte(.gz), the test set")
      }
      let train = try ImageSet.readIDX(images: trainImages, labels: find("train-labels-idx1-ubyte"))
      let test = try ImageSet.readIDX(images: testImages, labels: find("t10k-labels-idx1-ubyte"))
      guard train.height == test.height && train.width == test.width else {
        throw .mismatch(
          path: testImages,
          "test images are \(test.height)×\(test.width), training images \(train.height)×\(train.width)")
      }
      return ImageData(
        train: train, test: test, layout: "mnist-idx",
        testSplit: "the data set's own test files (\((testImages as NSString).lastPathComponent))")
    }
    let entries = ((try? fm.contentsOfDirectory(atPath: path)) ?? []).sorted()
    let candidates = entries.filter {
      $0.hasSuffix(".npy") || $0.hasSuffix(".npy.gz") || $0.hasSuffix(".csv") || $0.hasSuffix(".csv.gz")
    }
    guard candidates.count == 1 else {
      throw .unknownLayout(
        path: path,
        candidates.isEmpty
          ? "expected train-images-idx3-ubyte(.gz) and t10k-images-idx3-ubyte(.gz), or one .npy or digits .csv file"
          : "\(candidates.count) data files (\(candidates.joined(separator: ", "))); name one with --data FILE")
    }
    return try loadFile((path as NSString).appendingPathComponent(candidates[0]))
  }

  static func loadFile(_ path: String) throws(ImageDataError) -> ImageData {
    let all: ImageSet
    let layout: String
    if path.hasSuffix(".npy") || path.hasSuffix(".npy.gz") {
      all = try ImageSet.readNPY(path: path)
      layout = "npy"
    } else if path.hasSuffix(".csv") || path.hasSuffix(".csv.gz") {
      all = try ImageSet.readDigitsCSV(path: path)
      layout = "digits-csv"
    } else if path.contains("idx3-ubyte") {
      throw .unknownLayout(
        path: path, "an idx file on its own; give the directory holding the train- and t10k- files")
    } else {
      throw .unknownLayout(path: path, "not a .npy or .csv file (or an MNIST-style directory)")
    }
    guard all.count >= 10 else {
      throw .mismatch(path: path, "\(all.count) images; at least 10 are needed to hold out a test set")
    }
    let test = stride(from: 9, to: all.count, by: 10).map { $0 }
    let testSet = Set(test)
    let train = (0..<all.count).filter { !testSet.contains($0) }
    return ImageData(
      train: all.subset(train), test: all.subset(test), layout: layout,
      testSplit: "every 10th image of \((path as NSString).lastPathComponent) (indices 9, 19, …)")
  }
}

/// Stochastic binarisation for likelihood work: pixel p becomes 1 with probability p.
public enum Binarization {
  /// The seed the test set is binarised with, once, so every evaluation sees the same bits.
  public static let testSeed: UInt64 = 12_345

  /// A fresh Bernoulli draw of every pixel of `x` (values in [0, 1]).
  public static func sample(_ x: Tensor, rng: inout SeededRandom) -> Tensor {
    var out = x
    out.storage.withUnsafeMutableBufferPointer { p in
      for i in 0..<p.count { p[i] = rng.nextUniform() < p[i] ? 1 : 0 }
    }
    return out
  }

  /// The whole set binarised with `seed` (the test set: `testSeed`).
  public static func fixed(_ set: ImageSet, seed: UInt64 = testSeed) -> ImageSet {
    var rng = SeededRandom(seed: seed)
    var out = set
    for i in 0..<out.pixels.count { out.pixels[i] = rng.nextUniform() < out.pixels[i] ? 1 : 0 }
    return out
  }
}
