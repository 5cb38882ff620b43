import Foundation

/// Token streams of text corpora, with the vocabulary that numbers them.
///
/// Word level (WikiText layout, as PyTorch's word_language_model example reads it): every line
/// is split on white space and followed by `<eos>`; the vocabulary numbers words in order of
/// first appearance in the split it is built from; a word of another split that is not in it
/// becomes `<unk>` (WikiText already uses `<unk>` for rare words). Character level (Tiny
/// Shakespeare): every Unicode scalar is a token, the vocabulary its sorted distinct characters.
public struct Vocabulary: Sendable, Equatable {
    public private(set) var tokens: [String] = []
    private var ids: [String: Int] = [:]

    public init() {}

    public var count: Int { tokens.count }

    @discardableResult
    public mutating func add(_ token: String) -> Int {
        if let id = ids[token] { return id }
        ids[token] = tokens.count
        tokens.append(token)
        return tokens.count - 1
    }

    public func id(_ token: String) -> Int? { ids[token] }
}

public enum TextCorpus {
    /// The words of a WikiText-style file, `<eos>` after each line.
    public static func words(path: String) throws -> [String] {
        let text = try readText(path)
        var words: [String] = []
        text.enumerateLines { line, _ in
            words += line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            words.append("<eos>")
        }
        return words
    }

    /// Numbers `words` with `vocabulary`, adding new words when `grow` is true and mapping them to
    /// `<unk>` otherwise (an error if the vocabulary has no `<unk>`).
    public static func encode(_ words: [String], vocabulary: inout Vocabulary, grow: Bool, source: String) throws -> [Int] {
        if grow { return words.map { vocabulary.add($0) } }
        let unknown = vocabulary.id("<unk>")
        return try words.map { word in
            if let id = vocabulary.id(word) { return id }
            guard let unknown else {
                throw DatasetError.corrupt(file: source, reason: "word '\(word)' is not in the vocabulary and the vocabulary has no <unk>")
            }
            return unknown
        }
    }

    /// The characters of a text file as tokens, with the vocabulary of its sorted distinct characters.
    public static func characters(path: String) throws -> (tokens: [Int], vocabulary: Vocabulary) {
        let scalars = Array(try readText(path).unicodeScalars)
        var vocabulary = Vocabulary()
        for c in Set(scalars).sorted(by: { $0.value < $1.value }) { vocabulary.add(String(c)) }
        return (scalars.map { vocabulary.id(String($0))! }, vocabulary)
    }

    static func readText(_ path: String) throws -> String {
        guard FileManager.default.fileExists(atPath: path) else {
            throw DatasetError.missing(dataset: "text corpus", directory: (path as NSString).deletingLastPathComponent,
                                       files: [(path as NSString).lastPathComponent],
                                       howToGet: "WikiText-2: https://blog.salesforceairesearch.com/the-wikitext-long-term-dependency-language-modeling-dataset/ ; "
                                       + "Tiny Shakespeare: https://github.com/karpathy/char-rnn (data/tinyshakespeare/input.txt).")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw DatasetError.corrupt(file: path, reason: "cannot be read")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw DatasetError.corrupt(file: path, reason: "is not valid UTF-8 text")
        }
        guard text.contains(where: { !$0.isWhitespace }) else {
            throw DatasetError.corrupt(file: path, reason: "is empty (no tokens)")
        }
        return text
    }
}

/// A language-modeling dataset: training and evaluation token streams and their vocabulary.
public struct LanguageCorpus: Sendable {
    public var name: String
    public var vocabulary: Vocabulary
    public var train: [Int]
    public var test: [Int]

    /// WikiText-2 as the shared data has it: the train split is not available here, so the
    /// model **trains on `valid.txt` and is evaluated on `test.txt`**; the vocabulary is built
    /// from `train.txt` when present, else from the training split actually used (valid), and
    /// test words outside it map to `<unk>`.
    public static func wikiText(directory: String) throws -> LanguageCorpus {
        let fm = FileManager.default
        let hasTrain = fm.fileExists(atPath: directory + "/train.txt")
        let trainFile = directory + (hasTrain ? "/train.txt" : "/valid.txt")
        guard fm.fileExists(atPath: trainFile), fm.fileExists(atPath: directory + "/test.txt") else {
            throw DatasetError.missing(dataset: "WikiText-2", directory: directory, files: ["train.txt or valid.txt", "test.txt"],
                                       howToGet: "Download wikitext-2-v1 (tokenized) and rename wiki.{train,valid,test}.tokens to {train,valid,test}.txt.")
        }
        var vocabulary = Vocabulary()
        let train = try TextCorpus.encode(try TextCorpus.words(path: trainFile), vocabulary: &vocabulary, grow: true, source: trainFile)
        vocabulary.add("<unk>")
        let testFile = directory + "/test.txt"
        let test = try TextCorpus.encode(try TextCorpus.words(path: testFile), vocabulary: &vocabulary, grow: false, source: testFile)
        return LanguageCorpus(name: hasTrain ? "wikitext2" : "wikitext2 (trained on valid)", vocabulary: vocabulary, train: train, test: test)
    }

    /// Tiny Shakespeare, character level: the first 90% of the text trains, the last 10% evaluates.
    public static func characters(path: String) throws -> LanguageCorpus {
        let (tokens, vocabulary) = try TextCorpus.characters(path: path)
        let cut = tokens.count * 9 / 10
        return LanguageCorpus(name: "shakespeare", vocabulary: vocabulary, train: Array(tokens[..<cut]), test: Array(tokens[cut...]))
    }
}
