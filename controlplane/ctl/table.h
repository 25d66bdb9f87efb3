#pragma once

#include <string>
#include <vector>

namespace meridian::ctl {

// Left-aligned text columns, as kubectl prints them: a header row, then one row per item,
// columns three spaces apart, the last column unpadded. Cells are single-line: control
// characters (newlines in comments) become spaces. Widths count UTF-8 code points.
// Not thread-safe.
class Table {
 public:
  explicit Table(std::vector<std::string> headers);

  // Missing cells are empty; extra cells are dropped.
  void AddRow(std::vector<std::string> cells);
  bool empty() const { return rows_.empty(); }
  // The header and the rows, each line ending in '\n'.
  std::string Render() const;

 private:
  std::vector<std::string> headers_;
  std::vector<std::vector<std::string>> rows_;
};

// Number of UTF-8 code points (bytes that do not continue a sequence).
size_t DisplayWidth(const std::string& text);

}  // namespace meridian::ctl
