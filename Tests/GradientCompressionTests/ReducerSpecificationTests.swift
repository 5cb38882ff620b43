import Testing
@testable import GradientCompression

@Suite struct ReducerSpecificationTests {
    @Test func parsesAListWithOptionsContinuedAfterCommas() throws {
        let list = try ReducerSpecification.parseList("sgd,powersgd:rank=1,powersgd:rank=2,qsgd:levels=64,bucket=512,topk:ratio=0.01,signum")
        #expect(list.map(\.name) == ["sgd", "powersgd", "powersgd", "qsgd", "topk", "signum"])
        #expect(list[3].options.map(\.key) == ["levels", "bucket"])
        #expect(list[3].description == "qsgd:levels=64,bucket=512")
        #expect(try ReducerSpecification(parsing: "PowerSGD:Warm_Start=false").options[0].key == "warm-start")
    }

    @Test(arguments: ["", "sgd,,qsgd", ":rank=2", "rank=2", "powersgd:rank", "powersgd:rank=", "sgd,qsgd"])
    func rejectsMalformedText(text: String) {
        #expect(throws: GradientCompressionError.self) { try ReducerSpecification(parsing: text) }
    }

    @Test func optionReaderValidatesTypesRangesAndUnknownKeys() throws {
        let declared = [ReducerOption("rank", .integer(1...64), default: "1"), ReducerOption("warm-start", .flag, default: "true"),
                        ReducerOption("epsilon", .number(0...1), default: "0")]
        let reader = ReducerOptionReader(try ReducerSpecification(parsing: "powersgd:rank=2,warm-start=off"), accepting: declared)
        #expect(try reader.int("rank") == 2)
        #expect(try reader.bool("warm-start") == false)
        #expect(try reader.double("epsilon") == 0)
        try reader.finish()

        let zero = ReducerOptionReader(try ReducerSpecification(parsing: "powersgd:rank=0"), accepting: declared)
        #expect(throws: GradientCompressionError.invalidOption("powersgd: rank=0 is invalid; expected an integer in 1...64")) {
            try zero.int("rank")
        }
        let typo = ReducerOptionReader(try ReducerSpecification(parsing: "powersgd:rnak=2"), accepting: declared)
        #expect(throws: GradientCompressionError.invalidOption("powersgd has no option 'rnak' (accepted: rank, warm-start, epsilon)")) {
            try typo.finish()
        }
        // Reading an option that was not declared is an error naming it, not a silent default.
        #expect(throws: GradientCompressionError.self) { try typo.int("ranks") }
    }
}

/// A reducer's `name` is a specification: parsed and built again it gives a reducer with the
/// same name and the same outputs, for every catalog reducer and several option combinations.
@Suite struct ReducerNameRoundTripTests {
    @Test func theSpecificationsCoverEveryCatalogReducer() throws {
        let named = Set(try ReducerDigestTests.specifications.map { try ReducerSpecification(parsing: $0).name })
        #expect(named == Set(ReducerCatalog.entries.map(\.name)))
    }

    @Test(arguments: ReducerDigestTests.specifications)
    func nameParsesBackToAnEqualReducer(text: String) throws {
        let reducer = try ReducerCatalog.make(ReducerSpecification(parsing: text), seed: 3)
        let again = try ReducerCatalog.make(ReducerSpecification(parsing: reducer.name), seed: 3)
        #expect(again.name == reducer.name)
        #expect(try ReducerDigestTests.digest(reducer.name) == ReducerDigestTests.digest(text), "\(text) → \(reducer.name)")
    }

    @Test func powerSGDParsesItsOwnNameAndTheCatalogsSyntax() throws {
        let options = PowerSGD.Options(rank: 3, startIteration: 2, minCompressionRate: 1.5, errorFeedback: .global, warmStart: false,
                                       orthogonalizationEpsilon: 1e-6, orthonormalization: .householder, groupSameShapes: true)
        let reducer = try PowerSGD(options)
        #expect(try PowerSGD(specification: ReducerSpecification(parsing: reducer.name)).options == options)
        #expect(try PowerSGD(specification: ReducerSpecification(parsing: "powersgd:error-feedback=true,residual=global")).options.errorFeedback == .global)
        #expect(try PowerSGD(specification: ReducerSpecification(parsing: "powersgd:error-feedback=false")).options.errorFeedback == .off)
        #expect(throws: GradientCompressionError.self) {
            try PowerSGD(specification: ReducerSpecification(parsing: "powersgd:error-feedback=global,residual=local"))
        }
        // Both builders accept the same ranks.
        #expect(try ReducerCatalog.make(ReducerSpecification(parsing: "powersgd:rank=2048"), seed: 0).name == "powersgd(rank=2048)")
        #expect(try PowerSGD(specification: ReducerSpecification(parsing: "powersgd:rank=2048")).options.rank == 2048)
    }

    @Test func parsesTheNameSyntax() throws {
        let list = try ReducerSpecification.parseList("topk(ratio=0.1,scope=global),sgd,qsgd:levels=4,bucket=8")
        #expect(list.map(\.description) == ["topk:ratio=0.1,scope=global", "sgd", "qsgd:levels=4,bucket=8"])
        for bad in ["topk(ratio=0.1", "topk)ratio=0.1(", "(ratio=1)", "topk(ratio)"] {
            #expect(throws: GradientCompressionError.self, "\(bad)") { try ReducerSpecification.parseList(bad) }
        }
    }
}
