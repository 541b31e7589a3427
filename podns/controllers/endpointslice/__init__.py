"""EndpointSlice controller: keeps each selector Service's EndpointSlices equal to its pods."""
