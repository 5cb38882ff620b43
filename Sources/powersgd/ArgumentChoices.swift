import ArgumentParser
import CollectivesMPI
import NeuralNetworks
import Training

// The choices of the training flags are the libraries' enums: ArgumentParser validates a value
// against their cases (exit 2 naming the flag) and lists them in --help, so each list of names
// exists once, in its enum.
extension ExperimentConfiguration.Model: ExpressibleByArgument {}
extension ExperimentConfiguration.Dataset: ExpressibleByArgument {}
extension ExperimentConfiguration.Schedule: ExpressibleByArgument {}
extension SGD.NesterovForm: ExpressibleByArgument {}
extension ConvolutionImplementation: ExpressibleByArgument {}
extension Backend: ExpressibleByArgument {}

/// "mlp (a perceptron …), resnet8 (…)": each case with its summary, for a flag's help.
func describedChoices<Choice: CaseIterable & CustomStringConvertible>(_ type: Choice.Type, summary: (Choice) -> String) -> String {
    Choice.allCases.map { "\($0) (\(summary($0)))" }.joined(separator: ", ")
}
