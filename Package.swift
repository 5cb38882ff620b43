// swift-tools-version:6.0
import PackageDescription

// Module layout and direction of dependence: see README.md ("Modules").
// Every library target is also a library product, so another package can use
// our reducers and collectives in its own training loop.
let libm: [LinkerSetting] = [.linkedLibrary("m", .when(platforms: [.linux]))]

let package = Package(
    name: "PowerSGD",
    platforms: [.macOS(.v14)],
    // Swift 5 language mode: worker threads share raw buffers by design (see Collectives).
    products: [
        .library(name: "LinearAlgebra", targets: ["LinearAlgebra"]),
        .library(name: "Collectives", targets: ["Collectives"]),
        .library(name: "CollectivesMPI", targets: ["CollectivesMPI"]),
        .library(name: "GradientCompression", targets: ["GradientCompression"]),
        .library(name: "NeuralNetworks", targets: ["NeuralNetworks"]),
        .library(name: "Datasets", targets: ["Datasets"]),
        .library(name: "Privacy", targets: ["Privacy"]),
        .library(name: "Training", targets: ["Training"]),
        .library(name: "EmulatedCluster", targets: ["EmulatedCluster"]),
        .library(name: "GradientInversion", targets: ["GradientInversion"]),
        .executable(name: "powersgd", targets: ["powersgd"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
    ],
    targets: [
        // System libraries: OpenBLAS (cblas.h) and the reference LAPACKE over OpenBLAS's LAPACK.
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CLAPACKE", pkgConfig: "lapacke",
                       providers: [.apt(["liblapacke-dev"])]),

        // AVX2/FMA kernels behind a runtime CPU check (Swift's x86-64 baseline has neither).
        .target(name: "CVectorKernels"),
        .target(name: "LinearAlgebra", dependencies: ["COpenBLAS", "CLAPACKE", "CVectorKernels"],
                exclude: ["README.md"], linkerSettings: libm),

        .target(name: "CHalfConversion"),
        .target(name: "Collectives", dependencies: ["CHalfConversion"], exclude: ["README.md"]),
        // MPI: a system library for mpi.h (OpenMPI's pkg-config name is "mpi") and a C shim whose
        // public header does not include mpi.h (Swift cannot import OpenMPI's handle macros).
        .systemLibrary(name: "CMPI", pkgConfig: "mpi", providers: [.apt(["libopenmpi-dev"])]),
        .target(name: "CMPIShim", dependencies: ["CMPI"]),
        .target(name: "CollectivesMPI", dependencies: ["Collectives", "CMPIShim"], exclude: ["README.md"]),
        // Network namespaces, shaped veth links and the mpirun launch into them (`powersgd cluster`).
        .target(name: "EmulatedCluster", exclude: ["README.md"]),
        .executableTarget(name: "collectives-mpi-probe", dependencies: ["Collectives", "CollectivesMPI", "GradientCompression", "LinearAlgebra"]),
        .target(name: "GradientCompression", dependencies: ["LinearAlgebra", "Collectives", "CVectorKernels"],
                exclude: ["README.md"], linkerSettings: libm),

        // oneDNN's convolutions behind a C shim that keeps its handle types out of Swift; libdnnl
        // is loaded on first use (the header comes from libdnnl-dev).
        .target(name: "COneDNNConvolution"),
        .target(name: "NeuralNetworks", dependencies: ["LinearAlgebra", "COneDNNConvolution"],
                exclude: ["README.md"], linkerSettings: libm),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .target(name: "Datasets", dependencies: ["LinearAlgebra", "CZlib"], exclude: ["README.md"]),
        // DP-SGD's accountant (RDP of the sampled Gaussian mechanism), settings and noise.
        .target(name: "Privacy", dependencies: ["LinearAlgebra"], exclude: ["README.md"], linkerSettings: libm),
        .target(name: "Training", dependencies: ["LinearAlgebra", "Collectives", "GradientCompression", "NeuralNetworks", "Datasets", "Privacy"],
                exclude: ["README.md"], linkerSettings: libm),

        // Gradient inversion attacks on what an observer of one worker's messages sees (docs/privacy.md).
        .target(name: "GradientInversion", dependencies: ["LinearAlgebra", "Collectives", "GradientCompression", "NeuralNetworks", "Datasets", "Training", "CZlib"],
                exclude: ["README.md"], linkerSettings: libm),

        .executableTarget(name: "powersgd", dependencies: [
            "LinearAlgebra", "Collectives", "GradientCompression", "NeuralNetworks", "Datasets", "Training", "Privacy", "CollectivesMPI", "EmulatedCluster", "GradientInversion",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Yams", package: "Yams"),
        ]),

        // What several test targets share: deterministic tensors, relative errors, running a child process.
        .target(name: "TestSupport", dependencies: ["LinearAlgebra"], path: "Tests/TestSupport"),
        .testTarget(name: "LinearAlgebraTests", dependencies: ["LinearAlgebra"]),
        .testTarget(name: "CollectivesTests", dependencies: ["Collectives"]),
        .testTarget(name: "CollectivesMPITests", dependencies: ["CollectivesMPI", "collectives-mpi-probe", "TestSupport"]),
        .testTarget(name: "NeuralNetworksTests", dependencies: ["NeuralNetworks", "LinearAlgebra", "TestSupport"]),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "Collectives", "GradientCompression", "NeuralNetworks", "LinearAlgebra", "TestSupport"]),
        .testTarget(name: "DatasetsTests", dependencies: ["Datasets", "LinearAlgebra"]),
        .testTarget(name: "CommandLineTests", dependencies: ["powersgd", "Training", "GradientCompression", "EmulatedCluster", "TestSupport"]),
        .testTarget(name: "GradientCompressionTests", dependencies: ["GradientCompression", "Collectives", "LinearAlgebra", "TestSupport"]),
        .testTarget(name: "PrivacyTests", dependencies: ["Privacy", "LinearAlgebra"]),
        .testTarget(name: "GradientInversionTests", dependencies: ["GradientInversion", "NeuralNetworks", "LinearAlgebra"]),
    ],
    swiftLanguageModes: [.v5]
)
