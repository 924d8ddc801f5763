// Classifiers: crowd-classifier, crowd-classifier-multi-select, crowd-image-classifier,
// crowd-image-classifier-multi-select. The object to classify on the left, the categories and
// instructions on the right; number keys pick a category.
(function () {
  'use strict';
  var C = window.LoopinCrowd;

  /** The two-column task layout every widget uses. */
  C.layout = function (el, header, main, side) {
    var head = header ? C.h('h2.lc-header', { text: header }) : null;
    var wrap = C.h('div.lc-task', {}, [
      C.h('div.lc-task-main', {}, [head].concat(main)),
      C.h('aside.lc-task-side', {}, side),
    ]);
    el.prepend(wrap);
    return wrap;
  };

  class Classifier extends C.Element {
    get multiple() {
      return false;
    }

    build() {
      var self = this;
      var regions = C.takeRegions(this, ['classification-target', 'full-instructions', 'short-instructions', 'worker-comment']);
      var extra = Array.prototype.slice.call(this.childNodes);
      this.categories = C.labelList(C.jsonAttr(this, 'categories', []));
      this.selected = [];
      var exclusion = C.jsonAttr(this, 'exclusion-category', null);
      this.exclusion = exclusion && (exclusion.text || exclusion.label) ? String(exclusion.text || exclusion.label) : null;

      this.buttons = this.categories.map(function (category, i) {
        return self._choiceButton(category, i < 9 ? String(i + 1) : null);
      });
      var choices = C.h('div.lc-choices', { role: this.multiple ? 'group' : 'radiogroup' }, this.buttons);
      if (this.exclusion !== null) {
        this.exclusionButton = this._choiceButton(this.exclusion, null);
        this.exclusionButton.classList.add('lc-exclusion');
        choices.appendChild(this.exclusionButton);
      }
      var side = [C.h('h3.lc-side-title', { text: this.multiple ? 'Choose all that apply' : 'Choose one' }), choices];
      var comment = this._commentBox(regions['worker-comment']);
      if (comment) side.push(comment);
      side.push(C.instructions(regions));
      C.layout(this, this.getAttribute('header'), [this._target(regions['classification-target'])].concat(extra), side);
      this.addEventListener('pointerdown', function () {
        C.keyTarget = self;
      });
      if (!C.keyTarget) C.keyTarget = this;
    }

    _target(region) {
      var src = this.getAttribute('src');
      if (src) return C.h('div.lc-target', {}, [C.h('img.lc-target-image', { src: src, alt: '' })]);
      return region ? C.h('div.lc-target', {}, [region]) : null;
    }

    _commentBox(region) {
      if (!region) return null;
      var area = (this._comment = C.h('textarea.lc-input', {
        rows: 3,
        placeholder: region.getAttribute('placeholder') || '',
      }));
      var box = C.h('label.lc-field', { hidden: true }, [
        C.h('span.lc-field-label', { text: region.getAttribute('header') || 'Comment' }),
        area,
      ]);
      var open = C.h('button.lc-linkbutton', {
        type: 'button',
        text: region.getAttribute('link-text') || 'Add a comment',
        onclick: function () {
          box.hidden = false;
          open.hidden = true;
          area.focus();
        },
      });
      return C.h('div.lc-comment', {}, [open, box]);
    }

    _choiceButton(text, key) {
      var self = this;
      var button = C.h('button.lc-choice-button', { type: 'button', 'aria-pressed': 'false' }, [
        key ? C.h('kbd', { text: key }) : null,
        C.h('span', { text: text }),
      ]);
      button.addEventListener('click', function () {
        self.toggle(text);
      });
      return button;
    }

    toggle(category) {
      if (!this.multiple) {
        this.selected = [category];
      } else if (category === this.exclusion) {
        this.selected = this.selected[0] === category ? [] : [category];
      } else {
        var without = this.selected.filter(function (c) {
          return c !== category;
        });
        this.selected = without.length < this.selected.length ? without : without.concat([category]);
        if (this.exclusion !== null) {
          var exclusion = this.exclusion;
          this.selected = this.selected.filter(function (c) {
            return c !== exclusion;
          });
        }
      }
      var selected = this.selected;
      var all = this.buttons.concat(this.exclusionButton ? [this.exclusionButton] : []);
      var names = this.categories.concat(this.exclusion !== null ? [this.exclusion] : []);
      all.forEach(function (button, i) {
        button.setAttribute('aria-pressed', String(selected.indexOf(names[i]) >= 0));
      });
      C.clearProblem(this);
    }

    onKey(e) {
      var index = '123456789'.indexOf(e.key);
      if (index < 0 || index >= this.categories.length) return false;
      this.toggle(this.categories[index]);
      return true;
    }

    get value() {
      return this._answer();
    }

    _crowdValidate() {
      if (this.selected.length) return '';
      return this.multiple ? 'Choose at least one category.' : 'Choose a category.';
    }

    _crowdAnswer() {
      return this._answer();
    }

    _answer() {
      if (this.multiple) {
        var exclusion = this.exclusion;
        var order = this.categories;
        // Choosing the exclusion category means none of the categories apply.
        var labels = this.selected
          .filter(function (c) {
            return c !== exclusion;
          })
          .sort(function (a, b) {
            return order.indexOf(a) - order.indexOf(b);
          });
        return { labels: labels };
      }
      var answer = { label: this.selected[0] };
      if (this._comment && this._comment.value.trim()) answer.workerComment = this._comment.value;
      return answer;
    }
  }

  class MultiClassifier extends Classifier {
    get multiple() {
      return true;
    }
  }

  customElements.define('crowd-classifier', class extends Classifier {});
  customElements.define('crowd-classifier-multi-select', class extends MultiClassifier {});
  customElements.define('crowd-image-classifier', class extends Classifier {});
  customElements.define('crowd-image-classifier-multi-select', class extends MultiClassifier {});
})();
