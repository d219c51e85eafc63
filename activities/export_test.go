package activities

// LoadInventoryWithin is LoadInventory reading at most limit bytes, so
// that a test can pass the limit without a 256 MiB inventory.
var LoadInventoryWithin = loadInventory
