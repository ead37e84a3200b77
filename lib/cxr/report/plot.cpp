// SPDX-License-Identifier: LGPL-2.1-or-later
#include "cxr/report/plot.hpp"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "cxr/error.hpp"
#include "cxr/util/csv.hpp"
#include "cxr/util/json.hpp"

namespace fs = std::filesystem;

namespace cxr::report {

namespace {

// gnuplot reads "NaN" as a missing point, so a curve simply has a gap there.
std::string num(double v) { return std::isfinite(v) ? util::json_number(v) : std::string("NaN"); }

// A datablock name must be an identifier.
std::string block(const std::string& name, const std::string& rows) { return "$" + name + " << EOD\n" + rows + "EOD\n"; }

const char* kStyle =
    "set style line 1 lc rgb '#1f77b4' lw 2 pt 7 ps 0.6\n"
    "set style line 2 lc rgb '#d62728' lw 2 pt 5 ps 0.6\n"
    "set grid lc rgb '#dddddd'\n"
    "set border lc rgb '#555555'\n"
    "set key outside right top\n";

std::string xtics_names(const std::vector<std::string>& names, const char* axis) {
  std::string s = std::string("set ") + axis + " (";
  for (size_t i = 0; i < names.size(); ++i) s += (i ? ", " : "") + gnuplot_quote(names[i]) + " " + std::to_string(i);
  return s + ")\n";
}

std::string class_name(const RunInfo& run, size_t i) {
  return i < run.classes.size() ? run.classes[i] : "class " + std::to_string(i);
}

}  // namespace

std::string gnuplot_quote(const std::string& text) {
  std::string q = "'";
  for (char c : text) {
    if (c == '\'') q += "''";
    else if (c == '\n' || c == '\r') q += ' ';
    else q += c;
  }
  return q + "'";
}

Figure curves_figure(const RunInfo& run, const std::string& metric, const std::string& name) {
  if (metric != "f1" && metric != "loss") throw InvalidArgument("curves: metric '" + metric + "' is not f1 or loss");
  Figure f;
  f.name = name;
  f.title = run.meta.name + ": " + (metric == "f1" ? "macro F1" : "loss");
  std::string rows;
  for (const EpochMetrics& e : run.epochs)
    rows += std::to_string(e.epoch) + " " + num(metric == "f1" ? e.train_f1 : e.train_loss) + " " +
            num(metric == "f1" ? e.val_f1 : e.val_loss) + "\n";
  std::ostringstream s;
  s << block("curves", rows) << kStyle;
  s << "set title " << gnuplot_quote(f.title) << "\n";
  s << "set xlabel 'epoch'\nset ylabel " << gnuplot_quote(metric == "f1" ? "macro F1" : "loss") << "\n";
  if (metric == "f1") s << "set yrange [0:1.02]\n";
  if (metric == "loss") {
    // An early diverging epoch (loss 1e6 beside 0.5) would flatten every other point.
    double lo = INFINITY, hi = 0;
    for (const EpochMetrics& e : run.epochs)
      for (double v : {e.train_loss, e.val_loss})
        if (std::isfinite(v) && v > 0) lo = std::min(lo, v), hi = std::max(hi, v);
    if (hi > 0 && hi / lo > 100) s << "set logscale y 10\nset format y '%g'\n";
  }
  if (run.epochs.size() <= 20) s << "set xtics 1\n";
  s << "set xrange [-0.5:" << std::max<size_t>(1, run.epochs.size()) - 0.5 << "]\n";
  if (run.best_epoch >= 0)
    s << "set arrow 1 from " << run.best_epoch << ", graph 0 to " << run.best_epoch
      << ", graph 1 nohead dt 2 lc rgb '#777777'\n"
      << "set label 1 'best' at " << run.best_epoch << ", graph 0.97 offset 0.5,0 tc rgb '#777777'\n";
  s << "plot $curves using 1:2 with linespoints ls 1 title 'train', "
       "$curves using 1:3 with linespoints ls 2 title 'val'\n";
  f.script = s.str();
  return f;
}

Figure confusion_figure(const RunInfo& run, const std::string& name) {
  const auto& m = run.confusion;
  if (m.empty()) throw InvalidArgument(run.dir + ": no test confusion matrix in summary.json");
  const size_t n = m.size();
  Figure f;
  f.name = name;
  f.title = run.meta.name + ": test confusion matrix";
  f.width = f.height = static_cast<int>(std::clamp<size_t>(160 + 90 * n, 420, 900));
  std::string rows;
  for (size_t t = 0; t < n; ++t)
    for (size_t p = 0; p < m[t].size(); ++p) rows += std::to_string(p) + " " + std::to_string(t) + " " + std::to_string(m[t][p]) + "\n";
  std::vector<std::string> names;
  for (size_t i = 0; i < n; ++i) names.push_back(class_name(run, i));
  std::ostringstream s;
  s << block("cm", rows);
  s << "set title " << gnuplot_quote(f.title) << "\n";
  s << "set xlabel 'predicted'\nset ylabel 'truth'\n";
  s << "set xrange [-0.5:" << n - 0.5 << "]\nset yrange [" << n - 0.5 << ":-0.5]\n";
  s << xtics_names(names, "xtics") << xtics_names(names, "ytics");
  s << "set tics scale 0\nunset key\nset size ratio -1\n";
  // Light to mid blue keeps the black counts readable in every cell.
  s << "set palette defined (0 '#ffffff', 1 '#6a9fd8')\nset cblabel 'scans'\n";
  s << "plot $cm using 1:2:3 with image, $cm using 1:2:(sprintf('%d', $3)) with labels font ',12'\n";
  f.script = s.str();
  return f;
}

Figure auroc_figure(const RunInfo& run, const std::string& name) {
  if (run.test_auroc.empty()) throw InvalidArgument(run.dir + ": no per-class test AUROC in summary.json");
  Figure f;
  f.name = name;
  f.title = run.meta.name + ": test AUROC and F1 per class";
  std::string rows;
  for (size_t c = 0; c < run.test_auroc.size(); ++c) {
    // Class names may hold spaces; gnuplot reads a double-quoted first column as one field.
    std::string label = class_name(run, c);
    label.erase(std::remove(label.begin(), label.end(), '"'), label.end());
    rows += "\"" + label + "\" " + num(run.test_auroc[c]) + " " +
            num(c < run.test_class_f1.size() ? run.test_class_f1[c] : std::nan("")) + "\n";
  }
  std::ostringstream s;
  s << block("pc", rows);
  s << "set title " << gnuplot_quote(f.title) << "\n";
  s << "set style data histogram\nset style histogram cluster gap 1\nset style fill solid 0.85 border -1\n"
       "set boxwidth 0.9\nset yrange [0:1.05]\nset grid ytics lc rgb '#dddddd'\nset key outside right top\n"
       "set xtics rotate by -30\nset ylabel 'score'\n";
  s << "plot $pc using 2:xtic(1) title 'AUROC' lc rgb '#1f77b4', $pc using 3 title 'F1' lc rgb '#ff7f0e', "
       "0.5 with lines dt 2 lc rgb '#777777' title 'chance AUROC'\n";
  f.script = s.str();
  return f;
}

Figure ablation_figure(const std::vector<RunInfo>& runs, const std::string& name) {
  std::vector<std::pair<double, double>> points;
  for (const RunInfo& r : runs) points.emplace_back(r.learning_rate(), r.test_f1);
  std::sort(points.begin(), points.end());
  Figure f;
  f.name = name;
  f.title = (runs.empty() ? std::string() : runs.front().meta.model + " on " + runs.front().meta.dataset + ": ") +
            "test F1 by learning rate";
  std::string rows;
  for (const auto& [lr, f1] : points) rows += num(lr) + " " + num(f1) + "\n";
  std::ostringstream s;
  s << block("lr", rows) << kStyle;
  s << "set title " << gnuplot_quote(f.title) << "\n";
  s << "set logscale x 10\nset format x '%g'\nset xlabel 'learning rate'\nset ylabel 'test macro F1'\n"
       "set yrange [0:1.02]\nunset key\n";
  if (!points.empty())
    s << "set xrange [" << num(points.front().first / 1.5) << ":" << num(points.back().first * 1.5) << "]\n";
  s << "plot $lr using 1:2 with linespoints ls 1, $lr using 1:2:(sprintf('%.3f', $2)) with labels offset 0,1\n";
  f.script = s.str();
  return f;
}

Figure ablation_curves_figure(const std::vector<RunInfo>& runs, const std::string& metric, const std::string& name) {
  if (metric != "f1" && metric != "loss") throw InvalidArgument("curves: metric '" + metric + "' is not f1 or loss");
  std::vector<const RunInfo*> order;
  for (const RunInfo& r : runs) order.push_back(&r);
  std::sort(order.begin(), order.end(), [](const RunInfo* a, const RunInfo* b) { return a->learning_rate() < b->learning_rate(); });
  Figure f;
  f.name = name;
  f.title = std::string("validation ") + (metric == "f1" ? "macro F1" : "loss") + " by learning rate";
  std::ostringstream s;
  for (size_t i = 0; i < order.size(); ++i) {
    std::string rows;
    for (const EpochMetrics& e : order[i]->epochs)
      rows += std::to_string(e.epoch) + " " + num(metric == "f1" ? e.val_f1 : e.val_loss) + "\n";
    s << block("r" + std::to_string(i), rows);
  }
  s << "set title " << gnuplot_quote(f.title) << "\n";
  s << "set grid lc rgb '#dddddd'\nset key outside right top title 'learning rate'\nset xlabel 'epoch'\nset ylabel "
    << gnuplot_quote(metric == "f1" ? "val macro F1" : "val loss") << "\n";
  if (metric == "f1") s << "set yrange [0:1.02]\n";
  s << "plot ";
  for (size_t i = 0; i < order.size(); ++i)
    s << (i ? ", " : "") << "$r" << i << " using 1:2 with linespoints lw 2 pt 7 ps 0.5 title "
      << gnuplot_quote(util::json_number(order[i]->learning_rate()));
  if (order.empty()) s << "NaN notitle";
  s << "\n";
  f.script = s.str();
  return f;
}

Figure tsne_figure(const std::string& csv_path, const std::string& title, const std::string& name) {
  const util::CsvTable t = util::read_csv(csv_path);
  const int xc = t.column("x"), yc = t.column("y"), lc = t.column("label");
  if (xc < 0 || yc < 0) throw ConfigError(csv_path + ":1: a t-SNE CSV needs columns x and y");
  std::map<std::string, std::string> groups;  // label -> rows; sorted, so colours are stable
  // x and y enter the script as numbers we format: text copied from the file could end the
  // data block early and have gnuplot run what follows (`system(...)`).
  auto coordinate = [&](size_t row, int col) {
    const std::string& field = t.rows[row][static_cast<size_t>(col)];
    const char* s = field.c_str();
    char* end = nullptr;
    const double v = std::strtod(s, &end);
    while (end && (*end == ' ' || *end == '\t')) ++end;
    if (end == s || *end != '\0' || !std::isfinite(v))
      throw ConfigError(csv_path + ":" + std::to_string(t.lines[row]) + ": " + t.header[static_cast<size_t>(col)] +
                        " is '" + field + "', not a finite number");
    return util::json_number(v);
  };
  for (size_t i = 0; i < t.rows.size(); ++i)
    groups[lc >= 0 ? t.rows[i][static_cast<size_t>(lc)] : std::string()] += coordinate(i, xc) + " " + coordinate(i, yc) + "\n";
  Figure f;
  f.name = name;
  f.title = title;
  f.width = 640;
  f.height = 520;
  std::ostringstream s;
  size_t i = 0;
  for (const auto& [label, rows] : groups) s << block("g" + std::to_string(i++), rows);
  s << "set title " << gnuplot_quote(title) << "\nset key outside right top\nunset xtics\nunset ytics\nset size ratio -1\n";
  s << "plot ";
  i = 0;
  for (const auto& [label, rows] : groups) {
    s << (i ? ", " : "") << "$g" << i << " using 1:2 with points pt 7 ps 0.5 title "
      << (label.empty() ? std::string("'scans'") : gnuplot_quote(label));
    ++i;
  }
  if (groups.empty()) s << "NaN notitle";
  s << "\n";
  f.script = s.str();
  return f;
}

void render(const Figure& figure, const std::string& dir, const std::string& gnuplot) {
  fs::create_directories(dir);
  const fs::path png = fs::absolute(fs::path(dir) / figure.name);
  const fs::path gp = fs::path(png).replace_extension(".gp");
  const fs::path log = fs::path(png).replace_extension(".log");
  {
    std::ofstream out(gp, std::ios::binary | std::ios::trunc);
    if (!out) throw IoError("cannot write " + gp.string() + ": " + std::strerror(errno));
    // noenhanced: class and run names are printed as written (no '_' subscripts).
    out << "set terminal pngcairo size " << figure.width << "," << figure.height
        << " noenhanced font 'sans,10'\nset output " << gnuplot_quote(png.string()) << "\n"
        << figure.script << "unset output\n";
    if (!out) throw IoError("cannot write " + gp.string());
  }
  fs::remove(png);
  const pid_t pid = fork();
  if (pid < 0) throw IoError(std::string("cannot start gnuplot: ") + std::strerror(errno));
  if (pid == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::close(fd);
    }
    ::execlp(gnuplot.c_str(), gnuplot.c_str(), gp.c_str(), static_cast<char*>(nullptr));
    std::fprintf(stderr, "cannot run %s: %s\n", gnuplot.c_str(), std::strerror(errno));
    ::_exit(127);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  std::string messages;
  {
    std::ifstream in(log);
    std::ostringstream ss;
    ss << in.rdbuf();
    messages = ss.str();
  }
  const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0 && fs::exists(png) && fs::file_size(png) > 0;
  if (!ok) {
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
      throw IoError("gnuplot not found ('" + gnuplot + "'): install gnuplot-nox (tools/setup.sh)");
    throw IoError("gnuplot failed on " + gp.string() + ": " + messages);
  }
  fs::remove(log);
}

bool gnuplot_has_pngcairo(const std::string& gnuplot) {
  const std::string cmd = gnuplot + " -e 'set terminal' 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return false;
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int rc = ::pclose(p);
  return rc == 0 && out.find("pngcairo") != std::string::npos;
}

}  // namespace cxr::report
