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
        var reader = ReducerOptionReader(try ReducerSpecification(parsing: "powersgd:rank=2,warm-start=off"))
        #expect(try reader.int("rank", default: 1, in: 1...64) == 2)
        #expect(try reader.bool("warm-start", default: true) == false)
        #expect(try reader.double("epsilon", default: 0) == 0)
        try reader.finish()

        var zero = ReducerOptionReader(try ReducerSpecification(parsing: "powersgd:rank=0"))
        #expect(throws: GradientCompressionError.invalidOption("powersgd: rank=0 is invalid; expected an integer in 1...64")) {
            try zero.int("rank", default: 1, in: 1...64)
        }
        var typo = ReducerOptionReader(try ReducerSpecification(parsing: "powersgd:rnak=2"))
        _ = try typo.int("rank", default: 1)
        #expect(throws: GradientCompressionError.invalidOption("powersgd has no option 'rnak' (accepted: rank)")) {
            try typo.finish()
        }
    }
}
