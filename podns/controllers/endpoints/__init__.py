"""Legacy Endpoints controller: one `Endpoints` object per selector Service, for older tools."""
