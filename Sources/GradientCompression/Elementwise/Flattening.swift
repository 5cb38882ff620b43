import LinearAlgebra

/// Concatenates tensors into one 1-D tensor (the "global" scope of Top-K and friends), and back.
enum Flattening {
    static func concatenate(_ tensors: [Tensor]) -> Tensor {
        var flat = [Float]()
        flat.reserveCapacity(GradientLayout.elementCount(tensors))
        for t in tensors { flat.append(contentsOf: t.scalars) }
        return try! Tensor(shape: [flat.count], scalars: flat)
    }

    static func split(_ flat: Tensor, like tensors: [Tensor]) -> [Tensor] {
        var offset = 0
        return tensors.map { t in
            defer { offset += t.count }
            return try! Tensor(shape: t.shape, scalars: Array(flat.scalars[offset ..< offset + t.count]))
        }
    }
}

